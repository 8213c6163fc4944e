"""Paper Fig. 9: ``||[F, Wp]||_F`` over time for several fixed ``tau`` and weight decays ``eta``
(log scale): the eigenspaces of ``F`` and ``Wp`` align (Theorem 3).

Simulated with :func:`dynamics.integrate_reduced` (symmetrised reduced dynamics, Eqn 7, adaptive
DOP853) from ``F(0) = W0 W0^T`` and a symmetric ``Wp(0) = sym(Wp0)`` (``W0``, ``Wp0`` i.i.d.
``N(0, 1/n)``); median and min-max band over seeds (top row). Dotted: the bound that Theorem 3's
proof gives along each run, ``||[F,Wp](t)||_F <= ||[F,Wp](0)||_F exp(-2 int_0^t lambda_min(K))``
(from ``d||C||^2/dt = -4 tr(K C C^T) <= -4 lambda_min(K) ||C||^2`` for the antisymmetric
``C = [F, Wp]``; it holds whatever the sign of ``lambda_min(K)``), median over seeds. Bottom row:
``lambda_min(K(t))`` (Eqn 9). Values below ``FLOOR`` are round-off and are not drawn.

Run: ``python -m figures.fig9_commutator [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import cumulative_trapezoid

from analysis.metrics import sym
from dynamics import integrate_reduced

from ._common import (doc_summary, FigureData, label_panel, param_colors, random_reduced_state, rows,
                      run_figure)

NAME = "fig9_commutator"
#: Commutator norms below this are at the numerical floor (round-off of ``F Wp - Wp F`` and the
#: local errors of the adaptive integrator, measured up to ~2e-12 at ``||F||_F ~ 10``).
FLOOR = 1e-10


@dataclass(frozen=True)
class Config:
    taus: tuple[float, ...] = (0.25, 0.5, 1.0)
    etas: tuple[float, ...] = (0.0, 0.01, 0.05)
    alpha_p: float = 1.0
    sigma2: float = 0.0
    n: int = 10
    n_runs: int = 5
    t_end: float = 100.0
    n_save: int = 1001

    @classmethod
    def tiny(cls) -> "Config":
        return cls(taus=(1.0,), etas=(0.0, 0.05), n=3, n_runs=2, t_end=5.0, n_save=51)


def initial_state(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(F0, sym(Wp0))`` from :func:`figures._common.random_reduced_state` (Eqn 7 needs a
    symmetric predictor)."""
    F0, Wp0 = random_reduced_state(seed, n)
    return F0, sym(Wp0)


def gronwall_bound(t: np.ndarray, c0: float, lambda_min_K: np.ndarray) -> np.ndarray:
    """``c0 exp(-2 int_0^t lambda_min(K))`` by the trapezoid rule on the saved times."""
    return c0 * np.exp(-2.0 * cumulative_trapezoid(lambda_min_K, t, initial=0.0))


def compute(cfg: Config) -> FigureData:
    runs = {k: [] for k in ("tau", "eta", "seed", "t", "commutator_norm", "bound", "lambda_min_K")}
    med = {k: [] for k in ("tau", "eta", "t", "comm_median", "comm_min", "comm_max",
                           "bound_median", "lambda_min_K_median")}
    summary = []
    for tau in cfg.taus:
        for eta in cfg.etas:
            C, B, K = [], [], []
            for seed in range(cfg.n_runs):
                F0, Wp0 = initial_state(seed, cfg.n)
                tr = integrate_reduced(F0, Wp0, alpha_p=cfg.alpha_p, eta=eta, sigma2=cfg.sigma2,
                                       tau=tau, symmetric=True, t_end=cfg.t_end, solver="DOP853",
                                       n_save=cfg.n_save)
                c, k = tr.obs.commutator_norm, tr.obs.lambda_min_K
                b = gronwall_bound(tr.t, c[0], k)
                C.append(c), B.append(b), K.append(k)
                n_t = len(tr.t)
                for key, v in zip(runs, (np.full(n_t, tau), np.full(n_t, eta), np.full(n_t, seed),
                                         tr.t, c, b, k)):
                    runs[key].append(v)
            C, B, K = np.array(C), np.array(B), np.array(K)
            for key, v in zip(med, (np.full(n_t, tau), np.full(n_t, eta), tr.t, np.median(C, 0),
                                    C.min(0), C.max(0), np.median(B, 0), np.median(K, 0))):
                med[key].append(v)
            valid = C > FLOOR
            ratio = np.where(valid, C / np.where(B > 0, B, np.inf), 0.0)
            summary.append({
                "tau": tau, "eta": eta,
                "max_ratio_commutator_over_bound_above_floor": float(ratio.max()),
                "time_to_1e-6_of_start_median": _first_time_below(tr.t, np.median(C, 0),
                                                                  1e-6 * np.median(C[:, 0])),
                "lambda_min_K_start_median": float(np.median(K[:, 0])),
                "lambda_min_K_end_median": float(np.median(K[:, -1])),
                "min_lambda_min_K": float(K.min()),
            })
    return FigureData(tables={"runs": {k: np.concatenate(v) for k, v in runs.items()},
                              "median": {k: np.concatenate(v) for k, v in med.items()}},
                      summary={"settings": summary})


def _first_time_below(t: np.ndarray, y: np.ndarray, level: float) -> float | None:
    idx = np.flatnonzero(y < level)
    return float(t[idx[0]]) if idx.size else None


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    m = data.tables["median"]
    nc = len(cfg.taus)
    fig, axes = plt.subplots(2, nc, figsize=(3.6 * nc, 5.0), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1]})
    colors = param_colors(len(cfg.etas), "plasma", hi=0.8)
    for j, tau in enumerate(cfg.taus):
        top, bottom = axes[0, j], axes[1, j]
        for c, eta in zip(colors, cfg.etas):
            d = rows(m, tau=tau, eta=eta)
            top.plot(d["t"], np.where(d["comm_median"] > FLOOR, d["comm_median"], np.nan), color=c)
            ok = d["comm_max"] > FLOOR
            top.fill_between(d["t"][ok], np.maximum(d["comm_min"][ok], FLOOR), d["comm_max"][ok],
                             color=c, alpha=0.18, lw=0)
            top.plot(d["t"], np.where(d["bound_median"] > FLOOR, d["bound_median"], np.nan),
                     color=c, ls=":", lw=1.1)
            bottom.plot(d["t"], d["lambda_min_K_median"], color=c)
        top.set_yscale("log")
        top.set_ylim(FLOOR, 1e2)
        top.set_title(rf"$\tau = {tau:g}$ ($\eta_c = {tau ** 2 / (4 * (1 + cfg.sigma2)):.3g}$)")
        bottom.axhline(0, color="k", lw=0.6, ls=":")
        bottom.set_xlabel("t")
        label_panel(top, "abcdef"[j])
        label_panel(bottom, "abcdef"[nc + j])
    axes[0, 0].set_ylabel(r"$\|[F, W_p]\|_F$")
    axes[1, 0].set_ylabel(r"$\lambda_{\min}(K)$ (median)")
    handles = [Line2D([], [], color=c, label=rf"$\eta = {e:g}$") for c, e in zip(colors, cfg.etas)]
    handles += [Line2D([], [], color="0.3", label="median (band: min-max)"),
                Line2D([], [], color="0.3", ls=":",
                       label=r"bound $\|C_0\| e^{-2\int \lambda_{\min}(K)}$")]
    axes[0, -1].legend(handles=handles, loc="upper right", fontsize=7)
    fig.suptitle(rf"Eigenspace alignment (Eqn 7, symmetric $W_p$; $n = {cfg.n}$, {cfg.n_runs} runs, "
                 rf"$\alpha_p = {cfg.alpha_p:g}$, $\sigma^2 = {cfg.sigma2:g}$)", y=1.0)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
