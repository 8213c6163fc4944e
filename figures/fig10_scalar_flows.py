"""Paper Fig. 10: flows of the scalar BYOL system ``(w_p, w, w_a)`` (Section 3, ``n1 = n2 = 1``).

Top row: streamlines in the ``(w_p, w)`` plane with the target frozen at a fixed ratio
``w_a = tau w`` for several ``tau`` (then ``s = w^2``, ``p = w_p`` obey Eqns 11-12: fixed points
at ``w_p = p*_+-``, ``w = +-p*/sqrt(alpha_p)``, and ``w = 0``), with the curve ``w^2 = w_p^2/alpha_p``
(the parabola of Eqn 14). Bottom row: the full system with the EMA target (``beta``), started at
``w_a(0) = 0``: trajectories in ``(w_p, w)``, ``w(t)`` and ``tau(t) = w_a/w``, integrated with
:func:`dynamics.integrate_scalar_byol`; the dots are the same starts integrated as a per-mode
system (:func:`dynamics.integrate_modes` with ``p = w_p``, ``s = w^2``, ``tau(0) = w_a(0)/w(0)``),
which Eqn 13 says must coincide (``tau = w_a/w`` obeys Eqn 13 exactly).

Run: ``python -m figures.fig10_scalar_flows [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamics import NonFiniteStateError, integrate_modes, integrate_scalar_byol
from dynamics.exact import collapse_threshold, fixed_point_stability
from dynamics.rhs import scalar_byol_rhs

from ._common import doc_summary, FigureData, label_panel, rows, run_figure

NAME = "fig10_scalar_flows"

#: Starts ``(w_p(0), w(0))`` of the EMA trajectories (``w_a(0) = 0``).
#: The last one collapses, and its ``w`` crosses 0 on the way (``tau = w_a/w`` diverges there).
STARTS = ((0.1, 0.3), (0.5, 0.3), (-0.4, 0.8), (1.3, 0.5), (0.3, 1.3), (0.05, 0.15),
          (0.6, -0.9), (-0.6, 0.3))
COLORS = ("#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
          "#d62728")


@dataclass(frozen=True)
class Config:
    taus: tuple[float, ...] = (0.25, 0.5, 1.0)   # fixed w_a / w of the top row
    eta: float = 0.04
    beta: float = 0.4
    alpha_p: float = 1.0
    sigma2: float = 0.0
    wp_range: tuple[float, float] = (-1.0, 1.5)
    w_range: tuple[float, float] = (-1.5, 1.5)
    n_grid: int = 50
    t_end: float = 100.0
    dt: float = 0.02
    n_save: int = 1001

    @classmethod
    def tiny(cls) -> "Config":
        return cls(taus=(1.0,), n_grid=10, t_end=2.0, n_save=21)


def compute(cfg: Config) -> FigureData:
    WP, Wg = np.meshgrid(np.linspace(*cfg.wp_range, cfg.n_grid), np.linspace(*cfg.w_range, cfg.n_grid))
    field = {k: [] for k in ("tau", "w_p", "w", "dw_p", "dw")}
    fps = {k: [] for k in ("tau", "name", "w_p", "w", "kind")}
    for tau in cfg.taus:
        dwp, dw, _ = scalar_byol_rhs(WP, Wg, tau * Wg, alpha_p=cfg.alpha_p, eta=cfg.eta,
                                     sigma2=cfg.sigma2, beta=cfg.beta)
        cols = (np.full(WP.size, tau), WP.ravel(), Wg.ravel(), dwp.ravel(), dw.ravel())
        for k, v in zip(field, cols):
            field[k].append(v)
        for fp in fixed_point_stability(tau=tau, eta=cfg.eta, sigma2=cfg.sigma2, alpha_p=cfg.alpha_p):
            for sign in ((1.0,) if fp.name == "origin" else (1.0, -1.0)):
                for k, v in zip(fps, (tau, fp.name, fp.p, sign * np.sqrt(fp.s), fp.kind)):
                    fps[k].append(v)

    st = np.array(STARTS)
    byol = integrate_scalar_byol(st[:, 0], st[:, 1], 0.0, alpha_p=cfg.alpha_p, eta=cfg.eta,
                                 sigma2=cfg.sigma2, beta=cfg.beta, t_end=cfg.t_end, solver="rk4",
                                 dt=cfg.dt, n_save=cfg.n_save)
    n_t, n_s = byol.w.shape
    # the same starts as per-mode systems, one at a time: where w crosses 0, tau = w_a/w
    # diverges in finite time (Eqn 13 has a -p tau^2 term) and the per-mode form stops there
    mp, ms, mt = (np.full((n_t, n_s), np.nan) for _ in range(3))
    breakdown = {}
    for i, (wp0, w0) in enumerate(STARTS):
        try:
            m = integrate_modes(wp0, w0 ** 2, alpha_p=cfg.alpha_p, eta=cfg.eta, sigma2=cfg.sigma2,
                                beta=cfg.beta, tau0=0.0, t_end=cfg.t_end, solver="rk4", dt=cfg.dt,
                                n_save=cfg.n_save, backend="numpy")
        except NonFiniteStateError as err:
            crossing = np.flatnonzero(np.sign(byol.w[:, i]) != np.sign(w0))
            breakdown[str(STARTS[i])] = {"per_mode_non_finite_at_t": err.t,
                                         "scalar_w_crosses_zero_at_t": float(byol.t[crossing[0]])
                                         if crossing.size else None}
            continue
        mp[:, i], ms[:, i], mt[:, i] = (x.reshape(n_t) for x in (m.p, m.s, m.tau))
    traj = {"start": np.repeat(np.arange(n_s), n_t), "t": np.tile(byol.t, n_s),
            "w_p": byol.w_p.T.ravel(), "w": byol.w.T.ravel(), "w_a": byol.w_a.T.ravel(),
            "tau": byol.tau.T.ravel(), "modes_p": mp.T.ravel(), "modes_s": ms.T.ravel(),
            "modes_tau": mt.T.ravel()}
    dev = {"p_vs_w_p": float(np.nanmax(np.abs(mp - byol.w_p))),
           "s_vs_w2": float(np.nanmax(np.abs(ms - byol.w ** 2))),
           "tau_vs_wa_over_w": float(np.nanmax(np.abs(mt - byol.tau)))}
    summary = {
        "eta_c_per_tau": {str(t): collapse_threshold(t, cfg.sigma2) for t in cfg.taus},
        "fixed_points": [{"tau": float(t), "name": str(n), "w_p": float(a), "w": float(b),
                          "kind": str(k)} for t, n, a, b, k in zip(*fps.values())],
        "ema_final": [{"start": STARTS[i], "w_p": float(byol.w_p[-1, i]), "w": float(byol.w[-1, i]),
                       "tau": float(byol.tau[-1, i])} for i in range(n_s)],
        "max_abs_deviation_scalar_vs_modes": dev,
        "per_mode_breakdown": breakdown,
    }
    return FigureData(tables={"field": {k: np.concatenate(v) for k, v in field.items()},
                              "fixed_points": {k: np.asarray(v) for k, v in fps.items()},
                              "ema_trajectories": traj}, summary=summary)


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    nc = max(len(cfg.taus), 3)
    fig, axes = plt.subplots(2, nc, figsize=(3.4 * nc, 6.4), squeeze=False)
    n = cfg.n_grid
    for j, tau in enumerate(cfg.taus):
        ax = axes[0, j]
        f = rows(data.tables["field"], tau=tau)
        U, V = f["dw_p"].reshape(n, n), f["dw"].reshape(n, n)
        speed = np.log10(np.hypot(U, V) + 1e-300)
        ax.streamplot(f["w_p"].reshape(n, n)[0], f["w"].reshape(n, n)[:, 0], U, V, density=1.0,
                      color=speed, cmap="Greys", norm=plt.Normalize(speed.max() - 4, speed.max() + 0.5),
                      linewidth=0.6, arrowsize=0.6)
        wp = np.linspace(*cfg.wp_range, 200)
        for sgn in (1, -1):
            ax.plot(wp, sgn * np.abs(wp) / np.sqrt(cfg.alpha_p), color="tab:blue", ls="--", lw=1.0)
        fp = rows(data.tables["fixed_points"], tau=tau)
        for a, b, kind in zip(fp["w_p"], fp["w"], fp["kind"]):
            ax.plot(a, b, "o", ms=6.5, mec="k", mew=1.2, mfc="k" if kind == "stable" else "white",
                    zorder=5)
        eta_c = collapse_threshold(tau, cfg.sigma2)
        rel = ">" if cfg.eta > eta_c else "<"
        ax.set_title(rf"$w_a = {tau:g}\,w$: $\eta = {cfg.eta:g}$ {rel} $\eta_c = {eta_c:.3g}$")
        ax.set_xlim(*cfg.wp_range)
        ax.set_ylim(*cfg.w_range)
        ax.set_xlabel(r"$w_p$")
        ax.set_ylabel(r"$w$")
        label_panel(ax, "abc"[j] if j < 3 else str(j))
    for j in range(len(cfg.taus), nc):
        axes[0, j].axis("off")

    tr = data.tables["ema_trajectories"]
    ax_ph, ax_w, ax_tau = axes[1, 0], axes[1, 1], axes[1, 2]
    for i in range(len(STARTS)):
        d = rows(tr, start=float(i))
        c = COLORS[i % len(COLORS)]
        ax_ph.plot(d["w_p"], d["w"], color=c, lw=1.3)
        ax_ph.plot(d["w_p"][0], d["w"][0], "s", color=c, ms=3.5)
        k = np.unique(np.linspace(0, d["t"].size - 1, 25).astype(int))
        ax_ph.plot(d["modes_p"][k], np.sign(d["w"][k]) * np.sqrt(d["modes_s"][k]), ".", color=c, ms=3)
        ax_w.plot(d["t"], d["w"], color=c, lw=1.3)
        ax_w.plot(d["t"][k], np.sign(d["w"][k]) * np.sqrt(d["modes_s"][k]), ".", color=c, ms=3)
        # break the line at the poles of w_a/w (w crossing 0) instead of joining +-inf
        ax_tau.plot(d["t"], np.where(np.abs(d["tau"]) < 5, d["tau"], np.nan), color=c, lw=1.3)
        ax_tau.plot(d["t"][k], d["modes_tau"][k], ".", color=c, ms=3)
    wp = np.linspace(*cfg.wp_range, 200)
    for sgn in (1, -1):
        ax_ph.plot(wp, sgn * np.abs(wp) / np.sqrt(cfg.alpha_p), color="tab:blue", ls="--", lw=1.0)
    ax_ph.set_xlim(*cfg.wp_range)
    ax_ph.set_ylim(*cfg.w_range)
    ax_ph.set_xlabel(r"$w_p$")
    ax_ph.set_ylabel(r"$w$")
    ax_ph.set_title(rf"EMA target: $\beta = {cfg.beta:g}$, $\eta = {cfg.eta:g}$, $w_a(0) = 0$")
    ax_w.set_xlabel("t")
    ax_w.set_ylabel(r"$w$")
    ax_w.axhline(0, color="k", lw=0.6, ls=":")
    ax_w.set_title(r"online weight $w(t)$")
    ax_tau.set_xlabel("t")
    ax_tau.set_ylabel(r"$\tau = w_a / w$")
    ax_tau.axhline(1, color="k", lw=0.6, ls=":")
    ax_tau.set_ylim(-0.6, 1.8)  # tau = w_a/w is unbounded where w crosses 0
    ax_tau.text(0.97, 0.62, "red (collapsing start): $w$ crosses 0,\n"
                r"$\tau = w_a/w$ has poles; the per-mode" "\n" r"form (Eqn 13) breaks down there",
                transform=ax_tau.transAxes, ha="right", va="top", fontsize=6.5, color="#d62728")
    ax_tau.set_title(r"EMA ratio $\tau(t)$ (Eqn 13)")
    ax_tau.legend(handles=[Line2D([], [], color="0.3", label="scalar BYOL"),
                           Line2D([], [], color="0.3", ls="", marker=".",
                                  label="per-mode Eqns 11-13")], loc="lower right")
    for j, ax in enumerate(axes[1, :3]):
        label_panel(ax, "def"[j])
    fig.legend(handles=[Line2D([], [], color="tab:blue", ls="--", label=r"$w^2 = w_p^2/\alpha_p$"),
                        Line2D([], [], marker="o", ls="", mfc="k", mec="k", label="stable"),
                        Line2D([], [], marker="o", ls="", mfc="white", mec="k",
                               label="unstable / saddle")],
               loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(rf"Scalar BYOL ($\alpha_p = {cfg.alpha_p:g}$, $\sigma^2 = {cfg.sigma2:g}$)", y=1.03)
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
