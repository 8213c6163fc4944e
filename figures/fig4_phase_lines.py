"""Paper Fig. 4: the 1-D phase line of a mode on the parabola ``s = p^2/alpha_p`` (Eqn 16).

``dp/dt = p^2 [tau - (1+sigma2) p] - eta p = -(1+sigma2) p (p - p*_-)(p - p*_+)`` for ``eta = 0``,
a small ``eta`` and a large ``eta > eta_c = tau^2/(4(1+sigma2))`` (panels a-c: the curve, the flow
direction on the axis, fixed points filled when stable, open when unstable, half-filled when
semi-stable). Panel (d) is the bifurcation diagram ``p*_+-(eta)`` with the end points of modes
started on the parabola and integrated with :func:`dynamics.integrate_modes` (Eqns 11-12):
they must land on the stable branches only, ``0`` below ``p*_-`` and ``p*_+`` above it.

Run: ``python -m figures.fig4_phase_lines [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamics import integrate_modes
from dynamics.exact import (collapse_threshold, fixed_point_branches, fixed_point_stability,
                            parabola_flow)

from ._common import doc_summary, FigureData, label_panel, rows, run_figure

NAME = "fig4_phase_lines"

#: Marker fill per 1-D stability kind.
FILL = {"stable": "full", "unstable": "none", "semi-stable": "left", "non-hyperbolic": "none"}


@dataclass(frozen=True)
class Config:
    etas: tuple[float, ...] = (0.0, 0.04, 0.3)
    tau: float = 1.0
    sigma2: float = 0.0
    alpha_p: float = 1.0
    p_range: tuple[float, float] = (-0.3, 1.3)
    # simulated end points (panel d): grid of eta x starting p on the parabola
    n_eta: int = 41
    eta_max: float = 0.4
    n_p0: int = 27
    t_end: float = 600.0
    dt: float = 0.05

    @classmethod
    def tiny(cls) -> "Config":
        return cls(n_eta=6, n_p0=5, t_end=20.0)


def compute(cfg: Config) -> FigureData:
    p = np.linspace(*cfg.p_range, 401)
    curve = {"eta": np.repeat(cfg.etas, p.size), "p": np.tile(p, len(cfg.etas)),
             "dpdt": np.concatenate([parabola_flow(p, tau=cfg.tau, eta=e, sigma2=cfg.sigma2)
                                     for e in cfg.etas])}
    fp = {k: [] for k in ("eta", "name", "p", "slope", "kind")}
    for e in cfg.etas:
        for f in fixed_point_stability(tau=cfg.tau, eta=e, sigma2=cfg.sigma2, alpha_p=cfg.alpha_p):
            for k, v in zip(fp, (e, f.name, f.p, f.slope_1d, f.kind_1d)):
                fp[k].append(v)
    fp = {k: np.asarray(v) for k, v in fp.items()}

    eta_grid = np.linspace(0.0, cfg.eta_max, cfg.n_eta)
    pm, pp = fixed_point_branches(cfg.tau, eta_grid, cfg.sigma2)
    branches = {"eta": eta_grid, "p_minus": pm, "p_plus": pp}

    # modes started on the parabola (c = 0, so they stay on it: Eqn 14), one vectorised call
    p0 = np.linspace(0.0, cfg.p_range[1], cfg.n_p0 + 1)[1:]
    traj = integrate_modes(p0[:, None], p0[:, None] ** 2 / cfg.alpha_p, alpha_p=cfg.alpha_p,
                           eta=eta_grid[None, :], sigma2=cfg.sigma2, tau=cfg.tau,
                           t_end=cfg.t_end, solver="rk4", dt=cfg.dt, n_save=2)
    P0, E = np.meshgrid(p0, eta_grid, indexing="ij")
    sim = {"eta": E.ravel(), "p0": P0.ravel(), "p_final": traj.p[-1].ravel()}

    # agreement: each end point against the stable fixed point the phase line predicts
    pm_b, pp_b = fixed_point_branches(cfg.tau, E, cfg.sigma2)
    predicted = np.where(np.isnan(pp_b) | (P0 < pm_b), 0.0, pp_b)  # at eta = 0: p0 > 0 -> p*_+
    err = np.abs(traj.p[-1] - predicted)
    eta_c = collapse_threshold(cfg.tau, cfg.sigma2)
    away = np.abs(E - eta_c) > 0.02  # slow (algebraic) approach right at the saddle-node
    summary = {
        "eta_c": eta_c,
        "fixed_points": [{"eta": float(e), "name": str(n), "p": float(q), "slope": float(s),
                          "kind": str(k)} for e, n, q, s, k in zip(*fp.values())],
        "max_abs_error_endpoint_vs_stable_branch_away_from_eta_c": float(err[away].max()),
        "max_abs_error_endpoint_vs_stable_branch_all": float(err.max()),
    }
    return FigureData(tables={"phase_line": curve, "fixed_points": fp, "branches": branches,
                              "simulated_endpoints": sim}, summary=summary)


def _draw_phase_line(ax, data: FigureData, cfg: Config, eta: float) -> None:
    c = rows(data.tables["phase_line"], eta=eta)
    fp = rows(data.tables["fixed_points"], eta=eta)
    ax.axhline(0.0, color="0.4", lw=0.8, zorder=1)
    ax.plot(c["p"], c["dpdt"], color="tab:blue", lw=1.6, zorder=2)
    # flow direction on the axis: one arrow per interval between fixed points
    edges = np.concatenate([[cfg.p_range[0]], np.sort(fp["p"]), [cfg.p_range[1]]])
    span = np.ptp(c["dpdt"])
    for a, b in zip(edges[:-1], edges[1:]):
        if b - a < 0.04 * (cfg.p_range[1] - cfg.p_range[0]):
            continue
        mid = 0.5 * (a + b)
        v = np.interp(mid, c["p"], c["dpdt"])
        d = 0.35 * min(b - a, 0.3) * np.sign(v)
        if d:
            ax.annotate("", xy=(mid + d / 2, 0), xytext=(mid - d / 2, 0),
                        arrowprops=dict(arrowstyle="-|>", color="k", lw=1.2, mutation_scale=11),
                        zorder=3)
    for q, kind, name in zip(fp["p"], fp["kind"], fp["name"]):
        ax.plot(q, 0.0, "o", ms=6.5, mec="k", mfc="k", mfcalt="white", mew=1.3,
                fillstyle=FILL[str(kind)], zorder=4)
        if name == "origin":  # below the axis, so that a nearby p*_- label stays readable
            ax.annotate("0", (q, 0.0), xytext=(0, -8), textcoords="offset points", ha="center",
                        va="top", fontsize=7.5)
            continue
        label = {"p_minus": r"$p^*_-$", "p_plus": r"$p^*_+$", "p_double": r"$p^*_\pm$"}[str(name)]
        ax.annotate(f"{label}\n{q:.3g}", (q, 0.0), xytext=(3, 8), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7.5)
    ax.set_xlim(*cfg.p_range)
    ax.set_ylim(c["dpdt"].min() - 0.08 * span, c["dpdt"].max() + 0.25 * span)
    ax.set_xlabel(r"$p_j$")


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = len(cfg.etas)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.8 * (n + 1), 2.9))
    eta_c = data.summary["eta_c"]
    for k, eta in enumerate(cfg.etas):
        ax = axes[k]
        _draw_phase_line(ax, data, cfg, eta)
        rel = "<" if eta < eta_c else ">"
        ax.set_title(rf"$\eta = {eta:g}$ ({rel} $\eta_c = {eta_c:g}$)" if eta else r"$\eta = 0$")
        label_panel(ax, "abcdefg"[k])
    axes[0].set_ylabel(r"$dp_j/dt$ on the parabola (Eqn 16)")

    ax = axes[n]
    e_fine = np.linspace(0.0, cfg.eta_max, 400)
    pm, pp = fixed_point_branches(cfg.tau, e_fine, cfg.sigma2)
    ax.plot(e_fine, pp, color="k", lw=1.6)
    ax.plot(e_fine, pm, color="k", lw=1.4, ls="--")
    ax.plot(e_fine[e_fine > 0], 0 * e_fine[e_fine > 0], color="k", lw=1.6)
    sim = data.tables["simulated_endpoints"]
    sc = ax.scatter(sim["eta"], sim["p_final"], c=sim["p0"], s=7, cmap="viridis", zorder=3,
                    lw=0)
    ax.axvline(eta_c, color="tab:red", ls=":", lw=1.2)
    ax.text(eta_c, 1.02, r" $\eta_c$", color="tab:red", transform=ax.get_xaxis_transform(),
            ha="left", va="bottom", fontsize=8)
    ax.set_xlabel(r"$\eta$")
    ax.set_ylabel(r"fixed point / end point $p_j$")
    ax.set_title("bifurcation diagram", pad=12)
    ax.set_xlim(-0.005, cfg.eta_max)
    cb = fig.colorbar(sc, ax=ax, pad=0.02, fraction=0.07)
    cb.set_label(r"start $p_j(0)$ (on the parabola)", fontsize=7)
    cb.ax.tick_params(labelsize=6.5)
    ax.legend(handles=[Line2D([], [], color="k", label="stable"),
                       Line2D([], [], color="k", ls="--", label=r"unstable $p^*_-$"),
                       Line2D([], [], marker="o", ls="", color="0.5", ms=3,
                              label=r"simulated $p_j(t_{end})$")],
              loc="upper right", fontsize=6.5)
    label_panel(ax, "abcdefg"[n])
    fig.suptitle(rf"Phase line of Eqn 16 ($\tau = {cfg.tau:g}$, $\sigma^2 = {cfg.sigma2:g}$; "
                 "filled: stable, open: unstable, half: semi-stable)", y=1.03)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
