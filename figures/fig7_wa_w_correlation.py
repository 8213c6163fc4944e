"""Paper Fig. 7: normalised correlation ``<Wa, W>_F / (||Wa||_F ||W||_F)`` between the target
(EMA) weights and the online weights over time, for several EMA rates ``beta`` and weight decays
``eta``: how well assumption A1 (``Wa = tau W``) holds.

Simulated with the matrix gradient flow of the linear network (Lemma 1, Eqns 2-4) via
:func:`dynamics.integrate_matrix`, forward Euler with step 0.01 (the paper's discrete dynamics,
i.e. full-batch gradient descent), isotropic data ``X = I``, ``X' = sigma^2 I`` with
``sigma = 0.03``, target started at ``Wa(0) = 0`` (so the correlation is 0 at ``t = 0``), random
``W(0)``, ``Wp(0)`` with entries of std ``1/sqrt(n)``, ``n_runs`` seeds. Top row: the
correlation, mean +- std over runs; bottom row: ``1 - correlation`` on a log scale, median and
min-max band over runs (the spread covers decades, so mean +- std is meaningless there).

Run: ``python -m figures.fig7_wa_w_correlation [--out DIR] [--tiny]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamics import integrate_matrix

from ._common import doc_summary, FigureData, label_panel, param_colors, rows, run_figure

NAME = "fig7_wa_w_correlation"


@dataclass(frozen=True)
class Config:
    etas: tuple[float, ...] = (0.0, 0.01, 0.1)
    betas: tuple[float, ...] = (0.1, 0.4, 1.0)
    sigma: float = 0.03
    alpha_p: float = 1.0
    n: int = 10               # n1 = n2
    n_runs: int = 10
    t_end: float = 50.0
    dt: float = 0.01
    n_save: int = 501

    @classmethod
    def tiny(cls) -> "Config":
        return cls(etas=(0.0, 0.1), betas=(0.4,), n=3, n_runs=2, t_end=1.0, n_save=11)


def initial_weights(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W0, Wp0)`` with i.i.d. ``N(0, 1/n)`` entries from ``default_rng([seed, 1])``."""
    rng = np.random.default_rng([seed, 1])
    return (rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal((n, n)) / np.sqrt(n))


def compute(cfg: Config) -> FigureData:
    X, Xp = np.eye(cfg.n), cfg.sigma ** 2 * np.eye(cfg.n)
    runs = {k: [] for k in ("eta", "beta", "seed", "t", "correlation", "tau")}
    stats = {k: [] for k in ("eta", "beta", "t", "mean", "std", "gap_median", "gap_min", "gap_max")}
    summary = []
    for eta in cfg.etas:
        for beta in cfg.betas:
            corr = []
            for seed in range(cfg.n_runs):
                W0, Wp0 = initial_weights(seed, cfg.n)
                tr = integrate_matrix(W0, Wp0, X=X, Xp=Xp, alpha_p=cfg.alpha_p, eta=eta, beta=beta,
                                      Wa0=np.zeros_like(W0), t_end=cfg.t_end, solver="euler",
                                      dt=cfg.dt, n_save=cfg.n_save, sigma2=cfg.sigma ** 2)
                c = tr.obs.wa_correlation
                corr.append(c)
                for k, v in zip(runs, (eta, beta, seed)):
                    runs[k].append(np.full(len(tr.t), v, dtype=float))
                runs["t"].append(tr.t)
                runs["correlation"].append(c)
                runs["tau"].append(tr.obs.tau)
            C = np.array(corr)
            m, s = C.mean(axis=0), C.std(axis=0)
            gap = 1.0 - C  # spread over runs spans decades: median and range, not mean +- std
            for k, v in zip(stats, (np.full(len(tr.t), eta), np.full(len(tr.t), beta), tr.t, m, s,
                                    np.median(gap, axis=0), gap.min(axis=0), gap.max(axis=0))):
                stats[k].append(v)
            after = tr.t >= 1.0
            summary.append({"eta": eta, "beta": beta,
                            "mean_at_t1": float(np.interp(1.0, tr.t, m)),
                            "min_mean_for_t_ge_1": float(m[after].min()) if after.any() else None,
                            "mean_at_end": float(m[-1]), "std_at_end": float(s[-1]),
                            "t_mean_above_0.999": _first_time_above(tr.t, m, 0.999)})
    return FigureData(tables={"runs": {k: np.concatenate(v) for k, v in runs.items()},
                              "mean_std": {k: np.concatenate(v) for k, v in stats.items()}},
                      summary={"settings": summary,
                               "method": "integrate_matrix (Eqns 2-4), Euler dt = 0.01"})


def _first_time_above(t: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """First saved time after which ``y`` stays above ``level`` (None if it never does)."""
    below = np.flatnonzero(y <= level)
    if below.size == 0:
        return float(t[0])
    k = below[-1] + 1
    return float(t[k]) if k < len(t) else None


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt

    ms = data.tables["mean_std"]
    fig, axes = plt.subplots(2, len(cfg.etas), figsize=(3.4 * len(cfg.etas), 4.8), sharex=True,
                             squeeze=False)
    colors = param_colors(len(cfg.betas), "viridis", hi=0.8)
    for k, eta in enumerate(cfg.etas):
        top, bottom = axes[0, k], axes[1, k]
        for c, beta in zip(colors, cfg.betas):
            d = rows(ms, eta=eta, beta=beta)
            d = {k: v[d["t"] > 0] for k, v in d.items()}  # corr = 0 at t = 0 (Wa = 0): not drawn
            top.plot(d["t"], d["mean"], color=c, label=rf"$\beta = {beta:g}$")
            top.fill_between(d["t"], d["mean"] - d["std"], np.minimum(d["mean"] + d["std"], 1.0),
                             color=c, alpha=0.25, lw=0)
            bottom.plot(d["t"], d["gap_median"], color=c)
            bottom.fill_between(d["t"], np.maximum(d["gap_min"], 1e-300), d["gap_max"], color=c,
                                alpha=0.2, lw=0)
        top.set_title(rf"$\eta = {eta:g}$")
        bottom.set_yscale("log")
        bottom.set_xlabel("t")
        label_panel(top, "abcdef"[k])
        label_panel(bottom, "abcdef"[len(cfg.etas) + k])
    ms_pos = {k: v[ms["t"] > 0] for k, v in ms.items()}
    lo = np.floor((np.min(ms_pos["mean"] - ms_pos["std"]) - 0.002) * 200) / 200  # 0.005 steps
    for ax in axes[0]:
        ax.set_ylim(lo, 1.001)
    axes[0, 0].set_ylabel(r"corr$(W_a, W)$" + "\n" + r"(mean $\pm$ std)")
    axes[1, 0].set_ylabel(r"$1 - $corr$(W_a, W)$" + "\n(median, min-max band)")
    axes[0, 0].legend(loc="lower right")
    gaps = data.tables["mean_std"]["gap_min"][data.tables["mean_std"]["t"] > 0]
    lo = 10 ** np.floor(np.log10(max(gaps[gaps > 0].min(), 1e-12)))
    for ax in axes[1]:
        ax.set_ylim(lo, 0.1)
    fig.suptitle(rf"Correlation of $W_a$ and $W$ (matrix dynamics, $n = {cfg.n}$, "
                 rf"$\sigma = {cfg.sigma:g}$, "
                 rf"$W_a(0) = 0$, {cfg.n_runs} runs; corr $= 0$ at $t = 0$)",
                 y=1.0, fontsize=9)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None):
    return run_figure(NAME, doc_summary(__doc__), Config, compute, plot, argv)


if __name__ == "__main__":
    main()
