"""Paper Fig. 3: phase portraits of the decoupled per-mode dynamics (Eqns 11-12) in ``(p_j, s_j)``.

Fixed ``tau`` (default 1, SimSiam), ``alpha_p = 1``, ``sigma2 = 0``, one panel per weight decay
``eta`` in {0, 0.01, 1}. Each panel shows the streamlines of the flow, the invariant parabola
``s = p^2/alpha_p`` (Eqn 14: weight decay drives every mode onto it), the fixed points (filled:
stable, open: unstable or saddle; at ``eta = 0`` the fixed points form the lines ``s = 0`` and
``p = tau/(1+sigma2)``, drawn solid where they attract and dotted where they repel), the
boundary of the collapse basin, and a few trajectories from :func:`dynamics.integrate_modes`.

Basin boundary: at ``eta = 0`` (exact, from the conserved ``c = s - p^2/alpha_p``) the parabola
for ``p <= 0`` and ``s = (p^2 - p*^2)/alpha_p`` for ``p > p* = tau/(1+sigma2)``; for
``0 < eta <= eta_c`` the stable manifold of the saddle at ``p*_-``
(:func:`dynamics.exact.separatrix`); above ``eta_c`` every start collapses.

Run: ``python -m figures.fig3_phase_portraits [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamics import integrate_modes
from dynamics.exact import (collapse_threshold, fixed_point_branches, fixed_point_stability,
                            mode_jacobian, separatrix)
from dynamics.rhs import mode_rhs

from ._common import doc_summary, FigureData, label_panel, rows, run_figure

NAME = "fig3_phase_portraits"

#: Trajectory colours (none blue or red: those mark the parabola and the basin boundary).
TRAJ_COLORS = ("#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
               "#7f7f7f")
BOUNDARY_COLOR = "#b2182b"

#: Trajectory starts ``(p0, s0)``: both sides of the parabola, both signs of ``p``, ``p > p*``.
STARTS = ((-0.6, 0.2), (-0.6, 0.9), (-0.2, 1.4), (0.15, 0.03), (0.3, 0.6), (0.6, 0.05),
          (1.5, 0.3), (1.5, 1.5))


@dataclass(frozen=True)
class Config:
    etas: tuple[float, ...] = (0.0, 0.01, 1.0)
    tau: float = 1.0
    alpha_p: float = 1.0
    sigma2: float = 0.0
    p_range: tuple[float, float] = (-1.0, 1.7)
    s_range: tuple[float, float] = (0.0, 1.6)
    n_grid: int = 60          # streamline field resolution per axis
    t_end: float = 150.0      # one eta = 0.01 start dips to s ~ 1e-8 and revives by t ~ 100
    dt: float = 0.01

    @classmethod
    def tiny(cls) -> "Config":
        return cls(n_grid=12, t_end=5.0)


def _line_kind(p: np.ndarray, s: np.ndarray, cfg: Config, eta: float) -> np.ndarray:
    """Normal stability of points on a line of fixed points (``eta = 0``): the sign of the
    Jacobian eigenvalue of largest modulus (the other one, along the line, is 0)."""
    J = mode_jacobian(p, s, alpha_p=cfg.alpha_p, eta=eta, sigma2=cfg.sigma2, tau=cfg.tau)
    ev = np.linalg.eigvals(J)
    lead = np.take_along_axis(np.real(ev), np.argmax(np.abs(ev), axis=-1)[..., None], -1)[..., 0]
    return np.where(lead < 0, "stable", "unstable")


def _fixed_points(cfg: Config) -> dict[str, np.ndarray]:
    """Isolated fixed points (with kinds) and, at ``eta = 0``, sampled lines of fixed points."""
    out: dict[str, list] = {"eta": [], "name": [], "p": [], "s": [], "kind": []}

    def add(eta, name, p, s, kind):
        for col, v in zip(out, (eta, name, p, s, kind)):
            out[col].extend(np.broadcast_to(np.asarray(v, dtype=object), np.shape(p)).tolist()
                            if np.ndim(p) else [v])

    lam = 1.0 + cfg.sigma2
    for eta in cfg.etas:
        if eta == 0:
            # two lines of fixed points; sample them and record their normal stability
            p_line = np.linspace(*cfg.p_range, 271)
            p_line = p_line[np.abs(p_line) > 1e-9]
            add(eta, "line_s0", p_line, np.zeros_like(p_line),
                _line_kind(p_line, np.zeros_like(p_line), cfg, eta))
            s_line = np.linspace(cfg.s_range[1] / 160, cfg.s_range[1], 160)
            p_fix = np.full_like(s_line, cfg.tau / lam)
            add(eta, "line_p_star", p_fix, s_line, _line_kind(p_fix, s_line, cfg, eta))
            continue
        for fp in fixed_point_stability(tau=cfg.tau, eta=eta, sigma2=cfg.sigma2, alpha_p=cfg.alpha_p):
            add(eta, fp.name, fp.p, fp.s, fp.kind)
    return {k: np.asarray(v) if k in ("name", "kind") else np.asarray(v, dtype=float)
            for k, v in out.items()}


def _basin_boundary(cfg: Config, eta: float, p_range: tuple[float, float],
                    s_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Boundary of the collapse basin as ``(p, s)`` points (empty above ``eta_c``)."""
    p_lo, p_hi = p_range
    if eta == 0:
        pstar = cfg.tau / (1.0 + cfg.sigma2)
        left = np.linspace(p_lo, min(0.0, p_hi), 200)
        right = np.linspace(max(pstar, p_lo), max(pstar, p_hi), 200)
        p = np.concatenate([left, [np.nan], right])
        s = np.concatenate([left ** 2 / cfg.alpha_p, [np.nan], (right ** 2 - pstar ** 2) / cfg.alpha_p])
        return p, s
    if eta > collapse_threshold(cfg.tau, cfg.sigma2):
        return np.array([]), np.array([])
    P, S = separatrix(alpha_p=cfg.alpha_p, eta=eta, sigma2=cfg.sigma2, tau=cfg.tau,
                      p_range=p_range, s_max=1.5 * s_max, n_points=600)
    keep = np.unique(np.linspace(0, len(P) - 1, 800).astype(int))
    return P[keep], S[keep]


def _zoom_box(cfg: Config, eta: float) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Inset region around the origin when the saddle ``p*_-`` is too close to it to be seen
    in the main panel (less than 3% of the ``p`` range away): ``[-p*_-, 3 p*_-] x [0, 4 s*_-]``."""
    pm = fixed_point_branches(cfg.tau, eta, cfg.sigma2)[0]
    if eta == 0 or not np.isfinite(pm) or pm > 0.03 * (cfg.p_range[1] - cfg.p_range[0]):
        return None
    pm = float(pm)
    return (-pm, 3.0 * pm), (0.0, 4.0 * pm * pm / cfg.alpha_p)


def _region(cfg: Config, eta: float, region: str, p_range, s_range) -> tuple[dict, dict]:
    """Flow field on a grid and basin boundary inside one box, each tagged with ``eta`` and
    ``region`` (``"main"`` or ``"zoom"``)."""
    P, S = np.meshgrid(np.linspace(*p_range, cfg.n_grid), np.linspace(*s_range, cfg.n_grid))
    dp, ds, _ = mode_rhs(P, S, cfg.tau, alpha_p=cfg.alpha_p, eta=eta, sigma2=cfg.sigma2)
    n = P.size
    field = {"eta": np.full(n, eta), "region": np.full(n, region), "p": P.ravel(), "s": S.ravel(),
             "dp": dp.ravel(), "ds": ds.ravel()}
    bp, bs = _basin_boundary(cfg, eta, p_range, s_range[1])
    bnd = {"eta": np.full(bp.size, eta), "region": np.full(bp.size, region), "p": bp, "s": bs}
    return field, bnd


def _concat(tables: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def compute(cfg: Config) -> FigureData:
    fields, bnds, zooms = [], [], {}
    for eta in cfg.etas:
        regions = [("main", cfg.p_range, cfg.s_range)]
        box = _zoom_box(cfg, eta)
        if box is not None:
            regions.append(("zoom", *box))
            zooms[float(eta)] = box
        for region, pr, sr in regions:
            f, b = _region(cfg, eta, region, pr, sr)
            fields.append(f)
            bnds.append(b)

    # all trajectories of all panels in one vectorised call: batch (start, eta)
    starts = np.array(STARTS)
    etas = np.array(cfg.etas)
    traj = integrate_modes(starts[:, 0, None], starts[:, 1, None], alpha_p=cfg.alpha_p,
                           eta=etas[None, :], sigma2=cfg.sigma2, tau=cfg.tau, t_end=cfg.t_end,
                           solver="rk4", dt=cfg.dt, n_save=int(10 * cfg.t_end) + 1,
                           backend="numpy")
    nt, ns, ne = traj.p.shape
    shape = (nt, ns, ne)
    tr = {"eta": np.broadcast_to(etas, shape), "start": np.broadcast_to(np.arange(ns)[:, None], shape),
          "t": np.broadcast_to(traj.t[:, None, None], shape), "p": traj.p, "s": traj.s}
    tr = {k: np.moveaxis(np.asarray(v), 0, -1).ravel() for k, v in tr.items()}  # time fastest

    fps = _fixed_points(cfg)
    final = {float(e): [(float(traj.p[-1, i, j]), float(traj.s[-1, i, j])) for i in range(ns)]
             for j, e in enumerate(cfg.etas)}
    summary = {
        "eta_c": collapse_threshold(cfg.tau, cfg.sigma2),
        "isolated_fixed_points": [
            {"eta": float(e), "name": str(n), "p": float(p), "s": float(s), "kind": str(k)}
            for e, n, p, s, k in zip(fps["eta"], fps["name"], fps["p"], fps["s"], fps["kind"])
            if not str(n).startswith("line")],
        "zoom_boxes": zooms,
        "trajectory_final_p_s": final,
        "starts": STARTS,
    }
    return FigureData(
        tables={"field": _concat(fields), "fixed_points": fps, "basin_boundary": _concat(bnds),
                "trajectories": tr},
        summary=summary)


def _panel_title(eta: float, cfg: Config, fps: dict[str, np.ndarray]) -> str:
    if eta == 0:
        return r"$\eta = 0$: fixed lines $s=0$, $p=\tau/(1+\sigma^2)$"
    f = rows(fps, eta=eta)
    named = dict(zip(f["name"], f["p"]))
    if "p_plus" in named:
        return (rf"$\eta = {eta:g}$: $p^*_- = {named.get('p_minus', np.nan):.4f}$, "
                rf"$p^*_+ = {named['p_plus']:.3f}$")
    return rf"$\eta = {eta:g} > \eta_c = {collapse_threshold(cfg.tau, cfg.sigma2):g}$: all collapse"


def _draw_flow(ax, data: FigureData, cfg: Config, eta: float, region: str,
               hide: tuple[str, ...] = (), density: float = 1.1) -> None:
    """Streamlines, parabola, basin boundary and fixed points of one box (except the fixed
    points named in ``hide``, e.g. a saddle too close to the origin to be told apart)."""
    import matplotlib.pyplot as plt

    f = rows(data.tables["field"], eta=eta, region=region)
    n = cfg.n_grid
    P, S = f["p"].reshape(n, n), f["s"].reshape(n, n)
    U, V = f["dp"].reshape(n, n), f["ds"].reshape(n, n)
    # colour by log speed in box units (slow regions light); streamplot itself takes the
    # velocity in data units
    speed = np.log10(np.hypot(U / np.ptp(P), V / max(np.ptp(S), 1e-300)) + 1e-300)
    hi = np.nanmax(speed)
    ax.streamplot(P[0], S[:, 0], U, V, density=density, color=speed,
                  cmap="Greys", norm=plt.Normalize(hi - 4.5, hi + 0.5), linewidth=0.6,
                  arrowsize=0.6, zorder=1)
    pp = np.linspace(P.min(), P.max(), 300)
    ax.plot(pp, pp ** 2 / cfg.alpha_p, color="tab:blue", ls="--", lw=1.1, zorder=2)
    b = rows(data.tables["basin_boundary"], eta=eta, region=region)
    if b["p"].size:
        ax.plot(b["p"], b["s"], color=BOUNDARY_COLOR, lw=1.6, ls="-.", zorder=3)
    fp = rows(data.tables["fixed_points"], eta=eta)
    # only what lies in the box (markers are drawn unclipped so that points on the edge show)
    inside = ((fp["p"] >= P.min()) & (fp["p"] <= P.max()) & (fp["s"] >= S.min())
              & (fp["s"] <= S.max()) & ~np.isin(fp["name"].astype(str), hide))
    fp = {k: v[inside] for k, v in fp.items()}
    names = fp["name"].astype(str)
    for line_name in ("line_s0", "line_p_star"):
        on = names == line_name
        for kind, style in (("stable", "-"), ("unstable", ":")):
            m = on & (fp["kind"] == kind)
            if m.any():
                ax.plot(np.where(m, fp["p"], np.nan)[on], np.where(m, fp["s"], np.nan)[on],
                        color="k", ls=style, lw=3.0, zorder=6, clip_on=False)
    iso = ~np.char.startswith(names, "line")
    for p, s, kind in zip(fp["p"][iso], fp["s"][iso], fp["kind"][iso]):
        ax.plot(p, s, "o", ms=7, mec="k", mew=1.3, mfc="k" if kind == "stable" else "white",
                zorder=7, clip_on=False)
    ax.set_xlim(P.min(), P.max())
    ax.set_ylim(S.min(), S.max())


def _draw_trajectories(ax, data: FigureData, eta: float) -> None:
    for i in range(len(STARTS)):
        t = rows(data.tables["trajectories"], eta=eta, start=float(i))
        c = TRAJ_COLORS[i % len(TRAJ_COLORS)]
        ax.plot(t["p"], t["s"], color=c, lw=1.3, zorder=4)
        ax.plot(t["p"][0], t["s"][0], "s", color=c, ms=3.5, zorder=5)
        j = max(1, int(np.argmax(np.hypot(t["p"] - t["p"][0], t["s"] - t["s"][0]) > 0.15)))
        ax.annotate("", xy=(t["p"][j], t["s"][j]), xytext=(t["p"][j - 1], t["s"][j - 1]),
                    arrowprops=dict(arrowstyle="-|>", color=c, lw=0, mutation_scale=9), zorder=5)


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig, axes = plt.subplots(1, len(cfg.etas), figsize=(3.5 * len(cfg.etas), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    zooms = data.summary.get("zoom_boxes", {})
    for k, (ax, eta) in enumerate(zip(axes, cfg.etas)):
        _draw_flow(ax, data, cfg, eta, "main", hide=("p_minus",) if float(eta) in zooms else ())
        _draw_trajectories(ax, data, eta)
        ax.set_xlabel(r"$p_j$")
        ax.set_title(_panel_title(eta, cfg, data.tables["fixed_points"]), fontsize=8.5)
        label_panel(ax, "abcdefgh"[k])
        if float(eta) in zooms:
            ins = ax.inset_axes([0.1, 0.5, 0.36, 0.4])
            ins.set_facecolor("white")
            ins.set_zorder(10)
            _draw_flow(ins, data, cfg, eta, "zoom", density=0.7)
            ins.tick_params(labelsize=5.5, length=2, pad=1)
            fmt = FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-") if v else "0")
            ins.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ins.yaxis.set_major_formatter(fmt)
            ins.xaxis.set_major_locator(MaxNLocator(3))
            ins.yaxis.set_major_locator(MaxNLocator(2))
            ins.text(0.97, 0.95, "zoom", transform=ins.transAxes, ha="right", va="top",
                     fontsize=6, bbox=dict(fc="white", ec="none", pad=0.5), zorder=11)
            for sp in ins.spines.values():
                sp.set_visible(True)
    axes[0].set_ylabel(r"$s_j$")
    handles = [
        Line2D([], [], color="tab:blue", ls="--", label=r"parabola $s = p^2/\alpha_p$"),
        Line2D([], [], color=BOUNDARY_COLOR, ls="-.", label="collapse-basin boundary"),
        Line2D([], [], marker="o", ls="", mfc="k", mec="k", label="stable fixed point"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="k", label="unstable / saddle"),
        Line2D([], [], color="k", lw=3, label="line of fixed points (attracting)"),
        Line2D([], [], color="k", lw=3, ls=":", label="line of fixed points (repelling)"),
        Line2D([], [], color="0.3", marker="s", ms=3.5, label=r"trajectory (start $\blacksquare$)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.13))
    fig.suptitle(rf"Per-mode dynamics (Eqns 11-12), $\tau = {cfg.tau:g}$, "
                 rf"$\alpha_p = {cfg.alpha_p:g}$, "
                 rf"$\sigma^2 = {cfg.sigma2:g}$", y=1.02)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
