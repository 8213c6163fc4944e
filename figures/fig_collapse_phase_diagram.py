"""Collapse phase diagram of the per-mode dynamics (Eqns 11-12, fixed ``tau``): simulated outcome
against the theory of Eqn 16.

(a) Fraction of collapsed modes over ``(eta, tau)``: at every grid point ``n_p0`` modes start on
the parabola ``s = p^2/alpha_p`` with ``p_j(0)`` at the midpoints of ``n_p0`` equal cells of
``(0, p0_max]`` (a "network"
whose predictor eigenvalues are spread, with ``F`` matched to it); all grid points and modes are
integrated in one vectorised :func:`dynamics.integrate_modes` call. Drawn on top: the collapse
threshold ``eta_c = tau^2/(4(1+sigma2))`` (beyond it every mode collapses; at it the fraction
jumps from about ``p_double/p0_max = tau/(2(1+sigma2) p0_max)`` to 1) and the predicted
iso-fraction lines, where ``p*_-(eta, tau) / p0_max`` equals a given fraction.

(b) ``tau = 1``: the fate of one mode started on the parabola at ``p0``, over ``(eta, p0)``, with
``p*_-(eta)`` (collapse below it), ``p*_+(eta)`` and ``eta_c``.

Collapse rule (shared definition, :data:`analysis.metrics.COLLAPSE_REL_TOL`): ``s_j(t_end) <=
COLLAPSE_REL_TOL * reference``, the reference being the largest initial ``s`` of the grid point
in (a) (as :func:`analysis.metrics.n_collapsed_modes` with ``reference = s0.max()``) and the
mode's own ``s_j(0)`` in (b).

Run: ``python -m figures.fig_collapse_phase_diagram [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.metrics import COLLAPSE_REL_TOL, n_collapsed_modes
from dynamics import integrate_modes
from dynamics.exact import collapse_threshold, fixed_point_branches

from ._common import doc_summary, FigureData, label_panel, run_figure

NAME = "fig_collapse_phase_diagram"


@dataclass(frozen=True)
class Config:
    alpha_p: float = 1.0
    sigma2: float = 0.0
    eta_max: float = 0.4
    n_eta: int = 41
    tau_range: tuple[float, float] = (0.1, 1.3)
    n_tau: int = 31
    p0_max: float = 1.2
    n_p0: int = 24
    tau_b: float = 1.0          # panel (b)
    n_p0_b: int = 60
    t_end: float = 1000.0
    dt: float = 0.1

    @classmethod
    def tiny(cls) -> "Config":
        return cls(n_eta=6, n_tau=4, n_p0=4, n_p0_b=5, t_end=50.0)


def start_grid(p_max: float, n: int) -> np.ndarray:
    """``n`` starts at the midpoints of ``n`` equal cells of ``(0, p_max]``. Midpoints, not cell
    edges: with round grids the edges hit ``p*_-`` exactly (e.g. ``tau = 0.7``, ``eta = 0.06``
    gives ``p*_- = 0.1``), and a mode started on the unstable fixed point stays there."""
    return (np.arange(n) + 0.5) * (p_max / n)


def predicted_fraction(p0: np.ndarray, eta: np.ndarray, tau: np.ndarray, sigma2: float) -> np.ndarray:
    """Eqn 16 on the parabola: fraction of starts ``p0 > 0`` (last axis) that collapse, i.e.
    ``p0 < p*_-`` when ``eta <= eta_c``, all of them when ``eta > eta_c``."""
    pm, pp = fixed_point_branches(tau, eta, sigma2)
    collapsed = np.where(np.isnan(pp)[..., None], True, p0 < pm[..., None])
    return collapsed.mean(axis=-1)


def compute(cfg: Config) -> FigureData:
    eta = np.linspace(0.0, cfg.eta_max, cfg.n_eta)
    tau = np.linspace(*cfg.tau_range, cfg.n_tau)
    p0 = start_grid(cfg.p0_max, cfg.n_p0)
    s0 = p0 ** 2 / cfg.alpha_p

    # (a) one call over the whole grid: batch (tau, eta, mode)
    tr = integrate_modes(p0[None, None, :], s0[None, None, :], alpha_p=cfg.alpha_p,
                         eta=eta[None, :, None], sigma2=cfg.sigma2, tau=tau[:, None, None],
                         t_end=cfg.t_end, solver="rk4", dt=cfg.dt, n_save=2)
    frac = n_collapsed_modes(tr.s[-1], reference=s0.max()) / p0.size          # (tau, eta)
    T, E = np.meshgrid(tau, eta, indexing="ij")
    pred = predicted_fraction(p0, E, T, cfg.sigma2)
    grid_a = {"tau": T.ravel(), "eta": E.ravel(), "fraction_collapsed": frac.ravel(),
              "predicted_fraction": pred.ravel()}

    # (b) tau = tau_b: batch (p0, eta), one mode each
    p0b = start_grid(cfg.p0_max, cfg.n_p0_b)
    trb = integrate_modes(p0b[:, None], p0b[:, None] ** 2 / cfg.alpha_p, alpha_p=cfg.alpha_p,
                          eta=eta[None, :], sigma2=cfg.sigma2, tau=cfg.tau_b, t_end=cfg.t_end,
                          solver="rk4", dt=cfg.dt, n_save=2)
    collapsed_b = trb.s[-1] <= COLLAPSE_REL_TOL * (p0b[:, None] ** 2 / cfg.alpha_p)
    P0, Eb = np.meshgrid(p0b, eta, indexing="ij")
    pm_b, pp_b = fixed_point_branches(cfg.tau_b, Eb, cfg.sigma2)
    pred_b = np.isnan(pp_b) | (P0 < pm_b)
    grid_b = {"p0": P0.ravel(), "eta": Eb.ravel(), "collapsed": collapsed_b.ravel().astype(int),
              "predicted_collapsed": pred_b.ravel().astype(int), "p_final": trb.p[-1].ravel()}

    eta_c = collapse_threshold(tau, cfg.sigma2)
    # simulated threshold per tau: smallest grid eta from which every mode collapses
    all_collapsed = frac >= 1.0
    first = np.where(all_collapsed.any(axis=1), eta[np.argmax(all_collapsed, axis=1)], np.nan)
    step = eta[1] - eta[0] if eta.size > 1 else np.nan
    boundary = {"tau": tau, "eta_c": eta_c, "first_grid_eta_all_collapsed": first,
                "first_grid_eta_above_eta_c": np.array([eta[eta > e][0] if (eta > e).any() else np.nan
                                                        for e in eta_c])}
    mism_a = np.abs(frac - pred) > 0.5 / p0.size
    summary = {
        "grid_a": {"n_eta": cfg.n_eta, "n_tau": cfg.n_tau, "n_modes": cfg.n_p0, "eta_step": step},
        "cells_a_disagreeing_with_eqn16": int(mism_a.sum()),
        "cells_a_total": int(mism_a.size),
        "disagreeing_cells_a": [{"tau": float(T[i]), "eta": float(E[i]), "simulated": float(frac[i]),
                                 "predicted": float(pred[i])} for i in zip(*np.nonzero(mism_a))][:20],
        "rows_where_simulated_threshold_is_not_the_first_grid_eta_above_eta_c": int(np.sum(
            ~np.isclose(boundary["first_grid_eta_all_collapsed"],
                        boundary["first_grid_eta_above_eta_c"], equal_nan=True))),
        "cells_b_disagreeing_with_eqn16": int(np.sum(collapsed_b != pred_b)),
        "cells_b_total": int(collapsed_b.size),
        "collapse_rule": f"s(t_end) <= {COLLAPSE_REL_TOL} * reference",
    }
    return FigureData(tables={"grid_eta_tau": grid_a, "threshold_per_tau": boundary,
                              "grid_eta_p0": grid_b}, summary=summary)


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.4, 4.0))
    ga = data.tables["grid_eta_tau"]
    eta = np.unique(ga["eta"])
    tau = np.unique(ga["tau"])
    frac = ga["fraction_collapsed"].reshape(tau.size, eta.size)
    pred = ga["predicted_fraction"].reshape(tau.size, eta.size)
    mesh = ax.pcolormesh(eta, tau, frac, cmap="Reds", vmin=0, vmax=1, shading="nearest")
    cb = fig.colorbar(mesh, ax=ax, pad=0.02)
    cb.set_label("fraction of modes collapsed (simulated)")
    tt = np.linspace(tau.min(), tau.max(), 300)
    ax.plot(collapse_threshold(tt, cfg.sigma2), tt, color="k", lw=2.0)
    if eta.size > 2 and tau.size > 2:
        # predicted iso-fraction lines from a fine evaluation of Eqn 16
        ef, tf = np.linspace(0, eta.max(), 400), np.linspace(tau.min(), tau.max(), 300)
        Tf, Ef = np.meshgrid(tf, ef, indexing="ij")
        pm = fixed_point_branches(Tf, Ef, cfg.sigma2)[0]
        below = np.where(np.isnan(pm), np.nan, pm / cfg.p0_max)
        cs = ax.contour(ef, tf, below, levels=[0.1, 0.25, 0.4], colors="tab:blue",
                        linestyles="--", linewidths=1.0)
        ax.clabel(cs, fmt=lambda v: f"{v:.0%}", fontsize=6.5)
    mism = np.abs(frac - pred) > 0.5 / cfg.n_p0
    n_mism = int(mism.sum())
    if mism.any():
        ti, ei = np.nonzero(mism)
        ax.plot(eta[ei], tau[ti], "x", color="tab:green", ms=4, mew=1.0)
    ax.set_xlim(eta.min() - 0.5 * np.diff(eta[:2]).sum(), eta.max())
    ax.set_xlabel(r"weight decay $\eta$")
    ax.set_ylabel(r"$\tau$")
    ax.set_title(rf"fraction collapsed; {cfg.n_p0} modes on the parabola, "
                 rf"$p_j(0) \in (0, {cfg.p0_max:g}]$", fontsize=8.5)
    ax.legend(handles=[Line2D([], [], color="k", lw=2,
                              label=r"$\eta_c = \tau^2 / (4(1+\sigma^2))$"),
                       Line2D([], [], color="tab:blue", ls="--",
                              label=r"predicted fraction ($p^*_- / p_{0,\max}$)"),
                       Line2D([], [], color="tab:green", marker="x", ls="",
                              label=rf"simulation $\neq$ Eqn 16: {n_mism} of {mism.size} cells")],
              loc="lower right", fontsize=7, frameon=True, framealpha=0.9)
    label_panel(ax, "a")

    gb = data.tables["grid_eta_p0"]
    etab = np.unique(gb["eta"])
    p0b = np.unique(gb["p0"])
    col = gb["collapsed"].reshape(p0b.size, etab.size)
    bx.pcolormesh(etab, p0b, col, cmap=ListedColormap(["#fde0c5", "#b2182b"]), vmin=0, vmax=1,
                  shading="nearest")
    ef = np.linspace(0, etab.max(), 600)
    pm, pp = fixed_point_branches(cfg.tau_b, ef, cfg.sigma2)
    bx.plot(ef, pm, color="k", lw=1.6, ls="--")
    bx.plot(ef, pp, color="k", lw=1.6)
    ec = collapse_threshold(cfg.tau_b, cfg.sigma2)
    bx.axvline(ec, color="k", lw=1.0, ls=":")
    wrong = col != gb["predicted_collapsed"].reshape(p0b.size, etab.size)
    bx.text(0.99, 0.02, rf"simulation $\neq$ Eqn 16: {int(wrong.sum())} of {wrong.size} cells",
            transform=bx.transAxes, ha="right", va="bottom", fontsize=7, color="white")
    if wrong.any():
        pi, ei = np.nonzero(wrong)
        bx.plot(etab[ei], p0b[pi], "x", color="tab:green", ms=4)
    bx.set_xlabel(r"weight decay $\eta$")
    bx.set_ylabel(r"start $p_j(0)$ (on the parabola)")
    bx.set_title(rf"$\tau = {cfg.tau_b:g}$: fate of one mode", fontsize=8.5)
    bx.set_xlim(etab.min() - 0.5 * np.diff(etab[:2]).sum(), etab.max())
    bx.legend(handles=[Patch(color="#b2182b", label="collapsed"),
                       Patch(color="#fde0c5", label="survived"),
                       Line2D([], [], color="k", ls="--", label=r"$p^*_-(\eta)$"),
                       Line2D([], [], color="k", label=r"$p^*_+(\eta)$"),
                       Line2D([], [], color="k", ls=":", label=rf"$\eta_c = {ec:g}$")],
              loc="upper right", fontsize=7, frameon=True, framealpha=0.85)
    label_panel(bx, "b")
    fig.suptitle(rf"Collapse phase diagram (Eqns 11-12 simulated vs Eqn 16; "
                 rf"$\alpha_p = {cfg.alpha_p:g}$, "
                 rf"$\sigma^2 = {cfg.sigma2:g}$, $t_{{end}} = {cfg.t_end:g}$)", y=1.0)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
