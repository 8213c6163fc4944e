"""``--plot`` of the dynamics command line (``python -m dynamics modes|scalar|matrix|reduced|sgd
--plot``): a PNG beside the numbers (``OUT/plot.png``) showing what was computed. matplotlib is
imported only here and only when asked, so the theory itself never needs it.

- ``modes``: ``s(t)`` (log scale) and ``p(t)`` of every trajectory (at most :data:`MAX_LINES`,
  evenly picked), blue if ``s`` ends above the survival floor, red if it collapses.
- ``scalar``: ``w_p``, ``w`` and ``w_a`` over time.
- ``matrix``, ``reduced``, ``sgd``: the eigenvalues of ``F = W W^T`` (``F`` itself for the reduced
  dynamics) over time on a log scale, and those of the predictor's symmetric part.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .linalg import sym

__all__ = ["plot_modes", "plot_scalar", "plot_matrix", "MAX_LINES"]

#: The most trajectories a ``modes`` plot draws (evenly picked from the grid).
MAX_LINES = 200


def _save(fig, out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(out) / "plot.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _subplots(n: int, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), constrained_layout=True, squeeze=False)
    fig.suptitle(title, fontsize=9)
    return fig, axes[0]


def plot_modes(t: np.ndarray, p: np.ndarray, s: np.ndarray, s_floor: float, out: str | Path) -> Path:
    """``p``, ``s``: ``(T, n)`` trajectories of the per-mode dynamics at times ``t``."""
    n = s.shape[1]
    pick = np.unique(np.linspace(0, n - 1, min(n, MAX_LINES)).round().astype(int))
    survived = s[-1] > s_floor
    fig, (a, b) = _subplots(2, f"per-mode dynamics: {n} trajectories"
                            + (f" ({pick.size} drawn)" if pick.size < n else "")
                            + f"; {int(survived.sum())} survive (s > {s_floor:g}), blue; collapsed red")
    for j in pick:
        col = "C0" if survived[j] else "C3"
        a.semilogy(t, np.clip(s[:, j], 1e-12, None), color=col, lw=0.7, alpha=0.6)
        b.plot(t, p[:, j], color=col, lw=0.7, alpha=0.6)
    a.axhline(s_floor, color="0.5", ls=":", lw=0.8)
    a.set(xlabel="t", ylabel="s (mode strength)", title="(a) s(t)")
    b.axhline(0, color="0.5", lw=0.6)
    b.set(xlabel="t", ylabel="p (predictor eigenvalue)", title="(b) p(t)")
    return _save(fig, out)


def plot_scalar(t: np.ndarray, series: dict[str, np.ndarray], out: str | Path) -> Path:
    """The scalar BYOL system's variables over time (each ``(T, n)``)."""
    fig, axes = _subplots(len(series), "scalar BYOL dynamics")
    for ax, (name, x) in zip(axes, series.items()):
        ax.plot(t, x.reshape(len(t), -1), lw=0.8)
        ax.set(xlabel="t", ylabel=name, title=name)
    return _save(fig, out)


def plot_matrix(t: np.ndarray, states: dict[str, np.ndarray], out: str | Path, what: str) -> Path:
    """``states``: ``F`` or ``W`` ``(T, n2, n1)``, and ``Wp`` ``(T, n2, n2)``."""
    F = states["F"] if "F" in states else np.einsum("tij,tkj->tik", states["W"], states["W"])
    eig_F = np.linalg.eigvalsh(sym(F))[:, ::-1]
    eig_P = np.linalg.eigvalsh(sym(states["Wp"]))[:, ::-1]
    fig, (a, b) = _subplots(2, f"{what}: eigenvalues over time")
    a.semilogy(t, np.clip(eig_F, 1e-12, None), lw=0.9)
    a.set(xlabel="t", ylabel="eigenvalues of F = W W^T" if "F" not in states else "eigenvalues of F",
          title="(a) F")
    b.plot(t, eig_P, lw=0.9)
    b.axhline(0, color="0.5", lw=0.6)
    b.set(xlabel="t", ylabel="eigenvalues of (Wp + Wp^T) / 2", title="(b) predictor")
    return _save(fig, out)
