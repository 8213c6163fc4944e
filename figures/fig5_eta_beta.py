"""Paper Fig. 5: effect of weight decay ``eta`` (top row) and of the EMA rate ``beta`` (bottom row)
on the decoupled per-mode dynamics with an EMA target (Eqns 11-13).

Modes ``j = 1..n`` start from an isotropic, small ``F(0)`` (``s_j(0) = s0`` for every mode) and a
spread of predictor eigenvalues ``p_j(0)``, with the target starting at zero (``tau_j(0) = 0``, the
setting of Eqn 15). Each mode has its own ``tau_j`` (Eqn 13 is per mode in effect). Columns:
``lambda_min(K)``, ``p_j(t)``, ``s_j(t)`` and ``tau_j(t)``.

``K`` restricted to the common eigenbasis of ``F`` and ``Wp`` is diagonal, with entries (Eqn 9
with ``F -> s_j``, ``Wp -> p_j``, ``tau -> tau_j``)

    K_j = (1+sigma2) [(alpha_p/2) s_j + p_j^2 - tau_j p_j / (1+sigma2)] + (3/2) eta,

so ``lambda_min(K) = min_j K_j``. Theorem 3 needs it positive; Eqn 17 is ``K_j > 0`` on the
parabola.

Paper's settings: ``beta = 0.4``, ``eta = 0.04`` (varied one at a time), Euler steps of 0.01.

Run: ``python -m figures.fig5_eta_beta [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.metrics import COLLAPSE_REL_TOL
from dynamics import integrate_modes

from ._common import doc_summary, FigureData, label_panel, param_colors, rows, run_figure

NAME = "fig5_eta_beta"

#: ``beta`` value standing for "no EMA" (fixed ``tau = 1``, SimSiam) in tables.
NO_EMA = 0.0


@dataclass(frozen=True)
class Config:
    etas: tuple[float, ...] = (0.0, 0.01, 0.04, 0.1)    # top row, at beta = beta_ref
    betas: tuple[float, ...] = (0.1, 0.4, 1.0, NO_EMA)  # bottom row, at eta = eta_ref
    beta_ref: float = 0.4
    eta_ref: float = 0.04
    alpha_p: float = 1.0
    sigma2: float = 0.0
    p0: tuple[float, float, int] = (-0.2, 0.6, 9)        # linspace(lo, hi, n) of p_j(0)
    s0: float = 0.05
    tau0: float = 0.0
    t_end: float = 200.0
    dt: float = 0.01
    n_save: int = 501

    @classmethod
    def tiny(cls) -> "Config":
        return cls(p0=(-0.2, 0.6, 3), t_end=2.0, n_save=21)


def mode_K(p, s, tau, *, alpha_p, eta, sigma2):
    """Diagonal entry ``K_j`` of Eqn 9 in the common eigenbasis (module docstring)."""
    lam = 1.0 + sigma2
    return lam * (0.5 * alpha_p * s + p * p - tau * p / lam) + 1.5 * eta


def _settings(cfg: Config) -> list[tuple[str, float, float]]:
    """``(row, eta, beta)`` of every curve; ``beta = NO_EMA`` means fixed ``tau = 1``."""
    return ([("eta", e, cfg.beta_ref) for e in cfg.etas]
            + [("beta", cfg.eta_ref, b) for b in cfg.betas])


def compute(cfg: Config) -> FigureData:
    p0 = np.linspace(*cfg.p0[:2], int(cfg.p0[2]))
    settings = _settings(cfg)
    etas = np.array([e for _, e, _ in settings])
    betas = np.array([b for _, _, b in settings])
    common = dict(alpha_p=cfg.alpha_p, sigma2=cfg.sigma2, t_end=cfg.t_end, solver="euler",
                  dt=cfg.dt, n_save=cfg.n_save)
    ema = betas != NO_EMA
    # one vectorised call per kind of target: batch (setting, mode)
    out = {}
    if ema.any():
        tr = integrate_modes(p0[None, :], cfg.s0, eta=etas[ema, None], beta=betas[ema, None],
                             tau0=cfg.tau0, **common)
        out["ema"] = tr
    if (~ema).any():
        tr = integrate_modes(p0[None, :], cfg.s0, eta=etas[~ema, None], tau=1.0, **common)
        out["fixed"] = tr
    t = next(iter(out.values())).t
    n_t, n_m = len(t), p0.size
    P = np.empty((n_t, len(settings), n_m))
    S, T = np.empty_like(P), np.empty_like(P)
    for key, mask in (("ema", ema), ("fixed", ~ema)):
        if key in out:
            P[:, mask], S[:, mask], T[:, mask] = out[key].p, out[key].s, out[key].tau
    K = mode_K(P, S, T, alpha_p=cfg.alpha_p, eta=etas[None, :, None], sigma2=cfg.sigma2)
    lam_min = K.min(axis=-1)

    traj = {k: [] for k in ("row", "eta", "beta", "mode", "p0", "t", "p", "s", "tau", "K")}
    kmin = {k: [] for k in ("row", "eta", "beta", "t", "lambda_min_K")}
    summary_rows = []
    for i, (row, e, b) in enumerate(settings):
        for j in range(n_m):
            for k, v in zip(traj, (row, e, b, j, p0[j])):
                traj[k].append(np.full(n_t, v, dtype=object if k == "row" else float))
            for k, arr in (("t", t), ("p", P[:, i, j]), ("s", S[:, i, j]), ("tau", T[:, i, j]),
                           ("K", K[:, i, j])):
                traj[k].append(arr)
        for k, v in zip(kmin, (row, e, b)):
            kmin[k].append(np.full(n_t, v, dtype=object if k == "row" else float))
        kmin["t"].append(t)
        kmin["lambda_min_K"].append(lam_min[:, i])
        # shared collapse rule of analysis.metrics, relative to the initial scale s0
        collapsed = S[-1, i] <= COLLAPSE_REL_TOL * cfg.s0
        neg = lam_min[:, i] < 0
        summary_rows.append({
            "row": row, "eta": e, "beta": None if b == NO_EMA else b,
            "n_collapsed": int(collapsed.sum()), "n_modes": n_m,
            "collapsed_p0": p0[collapsed].tolist(),
            "min_lambda_min_K": float(lam_min[:, i].min()),
            "t_at_min": float(t[np.argmin(lam_min[:, i])]),
            "time_with_negative_lambda_min_K": float(neg.sum() * (t[1] - t[0])),
            "lambda_min_K_end": float(lam_min[-1, i]),
            "p_end_surviving": sorted(set(np.round(P[-1, i][~collapsed], 4).tolist())),
        })
    tables = {"modes": {k: np.concatenate(v) for k, v in traj.items()},
              "lambda_min_K": {k: np.concatenate(v) for k, v in kmin.items()}}
    rule = f"s_j(t_end) <= {COLLAPSE_REL_TOL} * s0"
    return FigureData(tables=tables, summary={"settings": summary_rows, "collapse_rule": rule})


def _label(row: str, eta: float, beta: float) -> str:
    if row == "eta":
        return rf"$\eta = {eta:g}$"
    return "no EMA ($\\tau = 1$)" if beta == NO_EMA else rf"$\beta = {beta:g}$"


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(12.5, 5.6), sharex=True)
    modes, kmin = data.tables["modes"], data.tables["lambda_min_K"]
    for r, (row, values) in enumerate((("eta", cfg.etas), ("beta", cfg.betas))):
        colors = param_colors(len(values), "plasma" if row == "eta" else "viridis", hi=0.8)
        for c, v in zip(colors, values):
            e, b = (v, cfg.beta_ref) if row == "eta" else (cfg.eta_ref, v)
            k = rows(kmin, row=row, eta=e, beta=b)
            axes[r, 0].plot(k["t"], k["lambda_min_K"], color=c, label=_label(row, e, b))
            m = rows(modes, row=row, eta=e, beta=b)
            for j in np.unique(m["mode"]):
                mm = rows(m, mode=j)
                axes[r, 1].plot(mm["t"], mm["p"], color=c, lw=0.9)
                axes[r, 2].plot(mm["t"], mm["s"], color=c, lw=0.9)
                axes[r, 3].plot(mm["t"], mm["tau"], color=c, lw=0.9)
        fixed = (rf"$\beta = {cfg.beta_ref:g}$" if row == "eta" else rf"$\eta = {cfg.eta_ref:g}$")
        axes[r, 0].axhline(0, color="k", lw=0.7, ls=":")
        axes[r, 0].set_ylabel(r"$\lambda_{\min}(K)$")
        title = ("effect of $\\eta$, " if row == "eta" else "effect of $\\beta$, ") + fixed
        axes[r, 3].legend(*axes[r, 0].get_legend_handles_labels(), title=title, loc="lower right",
                          title_fontsize=7.5)
        axes[r, 1].set_ylabel(r"$p_j$")
        axes[r, 2].set_ylabel(r"$s_j$")
        axes[r, 2].set_yscale("log")
        axes[r, 2].set_ylim(1e-4, 3)
        axes[r, 3].set_ylabel(r"$\tau_j$")
        axes[r, 3].axhline(1, color="k", lw=0.7, ls=":")
    for ax in axes[1]:
        ax.set_xlabel("t")
    for k, ax in enumerate(axes.ravel()):
        label_panel(ax, "abcdefgh"[k])
    axes[0, 0].set_title(r"$\lambda_{\min}(K) = \min_j K_j$ (Eqn 9)")
    axes[0, 1].set_title(r"predictor eigenvalues $p_j$")
    axes[0, 2].set_title(r"eigenvalues $s_j$ of $F$")
    axes[0, 3].set_title(r"EMA ratio $\tau_j$ (Eqn 13)")
    fig.suptitle(rf"Per-mode dynamics with EMA (Eqns 11-13): $s_j(0) = {cfg.s0:g}$, "
                 rf"$p_j(0) \in [{cfg.p0[0]:g}, {cfg.p0[1]:g}]$ ({int(cfg.p0[2])} modes), "
                 rf"$\tau_j(0) = {cfg.tau0:g}$, $\alpha_p = {cfg.alpha_p:g}$, "
                 rf"$\sigma^2 = {cfg.sigma2:g}$",
                 y=1.0)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
