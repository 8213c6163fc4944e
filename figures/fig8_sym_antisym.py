"""Paper Fig. 8: Frobenius norms of the symmetric and antisymmetric parts of ``Wp`` over time under
the unsymmetrised reduced dynamics (Eqn 62, fixed ``tau``), for weight decays ``eta`` in
{0.001, 0.01, 0.05}: weight decay makes the predictor symmetric.

Simulated with :func:`dynamics.integrate_reduced` (``symmetric=False``, adaptive DOP853) from
``F(0) = W0 W0^T`` and a non-symmetric ``Wp(0)`` (i.i.d. ``N(0, 1/n)`` entries), several seeds
(median and min-max band).

Expected late-time rate (derived here, checked in panel b): once ``F`` has a null space (the
collapsed modes, projector ``P0``), Eqn 62 gives ``d(Wp P0)/dt = -eta Wp P0`` exactly (every
other term carries ``F P0 = 0``), so the part of ``Wp`` acting on collapsed directions, and with it
the antisymmetric part, decays as ``exp(-eta t)``; the part inside the surviving subspace relaxes
at rates of order ``alpha_p (1+sigma2) s_j``, much faster. Panel (b) compares the fitted decay
rate of ``||antisym(Wp)||_F`` over ``t in [min(2/eta, t_end/2), min(10/eta, t_end)]`` with ``eta``.

Run: ``python -m figures.fig8_sym_antisym [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamics import integrate_reduced

from ._common import (doc_summary, FigureData, label_panel, param_colors, random_reduced_state, rows,
                      run_figure)

NAME = "fig8_sym_antisym"
#: Norms below this are near the integrator's error floor (DOP853 with rtol 1e-8 on a state of
#: norm ~3 leaves ~1e-7 of noise in the antisymmetric part): not fitted and not drawn.
FIT_FLOOR = 1e-6


@dataclass(frozen=True)
class Config:
    etas: tuple[float, ...] = (0.001, 0.01, 0.05)
    tau: float = 1.0
    alpha_p: float = 1.0
    sigma2: float = 0.0
    n: int = 10
    n_runs: int = 5
    t_end: float = 3000.0
    n_save: int = 6001

    @classmethod
    def tiny(cls) -> "Config":
        return cls(etas=(0.01, 0.05), n=3, n_runs=2, t_end=20.0, n_save=41)


def fit_window(eta: float, t_end: float) -> tuple[float, float]:
    """Time window of the late-time rate fit (module docstring)."""
    return min(2.0 / eta, t_end / 2), min(10.0 / eta, t_end)


def decay_rate(t: np.ndarray, y: np.ndarray, window: tuple[float, float]) -> float:
    """Least-squares slope of ``-log y`` against ``t`` inside ``window`` (points above
    ``FIT_FLOOR`` only); NaN with fewer than 3 such points."""
    m = (t >= window[0]) & (t <= window[1]) & (y > FIT_FLOOR)
    if m.sum() < 3:
        return float("nan")
    return float(-np.polyfit(t[m], np.log(y[m]), 1)[0])


def compute(cfg: Config) -> FigureData:
    runs = {k: [] for k in ("eta", "seed", "t", "wp_sym_norm", "wp_antisym_norm")}
    bands = {k: [] for k in ("eta", "t", "sym_median", "sym_min", "sym_max",
                             "anti_median", "anti_min", "anti_max")}
    rates = {k: [] for k in ("eta", "seed", "fitted_rate", "n_collapsed_modes")}
    for eta in cfg.etas:
        sym_runs, anti_runs = [], []
        for seed in range(cfg.n_runs):
            F0, Wp0 = random_reduced_state(seed, cfg.n)
            tr = integrate_reduced(F0, Wp0, alpha_p=cfg.alpha_p, eta=eta, sigma2=cfg.sigma2,
                                   tau=cfg.tau, symmetric=False, t_end=cfg.t_end, solver="DOP853",
                                   n_save=cfg.n_save)
            o = tr.obs
            sym_runs.append(o.wp_sym_norm)
            anti_runs.append(o.wp_antisym_norm)
            for k, v in zip(runs, (np.full(len(tr.t), eta), np.full(len(tr.t), seed), tr.t,
                                   o.wp_sym_norm, o.wp_antisym_norm)):
                runs[k].append(v)
            s_end = o.s[-1]
            for k, v in zip(rates, (eta, seed, decay_rate(tr.t, o.wp_antisym_norm,
                                                          fit_window(eta, cfg.t_end)),
                                    int(np.sum(s_end <= 1e-3 * s_end.max())))):
                rates[k].append(v)
        S, A = np.array(sym_runs), np.array(anti_runs)
        for k, v in zip(bands, (np.full(len(tr.t), eta), tr.t, np.median(S, 0), S.min(0), S.max(0),
                                np.median(A, 0), A.min(0), A.max(0))):
            bands[k].append(v)
    rates = {k: np.asarray(v, dtype=float) for k, v in rates.items()}
    bands = {k: np.concatenate(v) for k, v in bands.items()}
    summary = {"per_eta": []}
    for eta in cfg.etas:
        r = rows(rates, eta=eta)
        b = rows(bands, eta=eta)
        summary["per_eta"].append({
            "eta": eta, "fit_window": fit_window(eta, cfg.t_end),
            "fitted_rate_median": float(np.nanmedian(r["fitted_rate"])),
            "fitted_rate_over_eta": (r["fitted_rate"] / eta).tolist(),
            "n_collapsed_modes": r["n_collapsed_modes"].tolist(),
            "anti_median_start": float(b["anti_median"][0]),
            "anti_median_end": float(b["anti_median"][-1]),
            "sym_median_end": float(b["sym_median"][-1]),
        })
    return FigureData(tables={"runs": {k: np.concatenate(v) for k, v in runs.items()},
                              "median_band": bands, "fitted_rates": rates},
                      summary=summary)


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.2, 3.5), gridspec_kw={"width_ratios": [2.2, 1]})
    colors = param_colors(len(cfg.etas), "plasma", hi=0.8)
    bands = data.tables["median_band"]
    for c, eta in zip(colors, cfg.etas):
        b = rows(bands, eta=eta)
        b = {k: v[b["t"] > 0] for k, v in b.items()}  # log time axis
        ax.plot(b["t"], b["sym_median"], color=c, lw=1.5)
        ax.fill_between(b["t"], b["sym_min"], b["sym_max"], color=c, alpha=0.15, lw=0)
        above = b["anti_max"] > FIT_FLOOR
        ax.plot(b["t"], np.where(b["anti_median"] > FIT_FLOOR, b["anti_median"], np.nan), color=c,
                lw=1.5, ls="--")
        ax.fill_between(b["t"][above], np.maximum(b["anti_min"][above], FIT_FLOOR),
                        b["anti_max"][above], color=c, alpha=0.15, lw=0)
        # guide: exp(-eta t) through the median at the start of the fit window
        lo, hi = fit_window(eta, cfg.t_end)
        tt = np.linspace(lo, cfg.t_end, 100)
        a0 = np.interp(lo, b["t"], b["anti_median"])
        guide = a0 * np.exp(-eta * (tt - lo))
        ax.plot(tt[guide > FIT_FLOOR], guide[guide > FIT_FLOOR], color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(FIT_FLOOR, 10)
    ax.set_xlim(b["t"][0], cfg.t_end)
    ax.set_xlabel("t")
    ax.set_ylabel(r"Frobenius norm")
    handles = [Line2D([], [], color=c, label=rf"$\eta = {e:g}$") for c, e in zip(colors, cfg.etas)]
    handles += [Line2D([], [], color="0.3", label=r"$\|$sym$(W_p)\|_F$"),
                Line2D([], [], color="0.3", ls="--", label=r"$\|$antisym$(W_p)\|_F$"),
                Line2D([], [], color="k", ls=":", lw=0.8, label=r"$\propto e^{-\eta t}$")]
    ax.legend(handles=handles, loc="lower left", ncol=2)
    ax.set_title(rf"Eqn 62 (unsymmetrised), $\tau = {cfg.tau:g}$, $n = {cfg.n}$: median and "
                 f"min-max of {cfg.n_runs} runs", fontsize=8.5)
    label_panel(ax, "a")

    r = data.tables["fitted_rates"]
    for c, eta in zip(colors, cfg.etas):
        rr = rows(r, eta=eta)
        k = rr["seed"].size
        jitter = eta * (1 + 0.06 * (np.arange(k) - k / 2) / max(k, 1))  # spread the seeds a bit
        bx.plot(jitter, rr["fitted_rate"], "o", color=c, ms=4)
    e = np.array([min(cfg.etas) / 2, max(cfg.etas) * 2])
    bx.plot(e, e, color="k", lw=0.8, ls=":", label="rate $= \\eta$")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel(r"$\eta$")
    bx.set_ylabel(r"fitted decay rate of $\|$antisym$(W_p)\|_F$")
    bx.legend(loc="upper left")
    bx.set_title("late-time rate vs prediction", fontsize=8.5)
    label_panel(bx, "b")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
