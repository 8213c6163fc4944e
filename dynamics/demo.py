"""``python -m dynamics demo``: the theory in one picture (the paper's Fig. 3, checked).

On an embedded default (``tau = 1``, ``alpha_p = 1``, ``sigma2 = 0``, ``eta`` in {0, 0.01, 1},
as in the paper's Fig. 3) it integrates the per-mode dynamics (Eqns 11-12) from a grid of
starts plus starts on the parabola, predicts each start's fate with the exact results of
:mod:`dynamics.exact` and compares. Writes to ``--out``:

- ``phase_portrait.png``: one panel per ``eta`` with flow lines, the parabola
  ``s = p^2/alpha_p``, fixed points (filled: stable, open: unstable/saddle/non-hyperbolic), the
  basin boundary, and trajectories coloured by predicted fate (crosses: prediction missed);
- ``summary.json``: fixed points and their stability, the collapse threshold, the fraction of
  trajectories whose simulated fate matched the exact prediction (and, for contrast, the
  fraction matched by the naive rule "survive iff ``p0 > p*_-``", exact only on the parabola),
  and the errors of the predicted limits ``p_inf``, ``s_inf``.

A trajectory counts as survived when ``s(t_end) > s_floor``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .exact import (classify_basin, collapse_threshold, fixed_point_branches,
                    fixed_point_stability, separatrix)
from .modes import integrate_modes

__all__ = ["DemoConfig", "run_demo", "plot_phase_portraits", "register"]


@dataclass(frozen=True)
class DemoConfig:
    """Embedded default of the demo (the paper's Fig. 3 setting)."""

    etas: tuple[float, ...] = (0.0, 0.01, 1.0)
    tau: float = 1.0
    alpha_p: float = 1.0
    sigma2: float = 0.0
    p_range: tuple[float, float] = (-1.0, 1.6)
    s_range: tuple[float, float] = (0.0, 1.6)
    n_p: int = 14            # grid starts: n_p x n_s inside the box
    n_s: int = 10
    n_parabola: int = 13     # extra starts on the parabola s = p^2/alpha_p
    t_end: float = 2000.0    # long run that decides the fate (c decays as exp(-2 eta t))
    t_plot: float = 40.0     # short run drawn in the figure
    dt: float = 0.02
    solver: str = "rk4"
    s_floor: float = 1e-6    # s(t_end) above this: survived


def _starts(cfg: DemoConfig) -> tuple[np.ndarray, np.ndarray]:
    (p_lo, p_hi), (s_lo, s_hi) = cfg.p_range, cfg.s_range
    dp, ds = (p_hi - p_lo) / cfg.n_p, (s_hi - s_lo) / cfg.n_s
    P, S = np.meshgrid(p_lo + dp * (np.arange(cfg.n_p) + 0.5), s_lo + ds * (np.arange(cfg.n_s) + 0.5))
    pp = np.linspace(p_lo + 0.1, p_hi - 0.1, cfg.n_parabola)
    pp = pp[pp ** 2 / cfg.alpha_p < s_hi]
    return np.concatenate([P.ravel(), pp]), np.concatenate([S.ravel(), pp ** 2 / cfg.alpha_p])


def _naive_rule(p0: np.ndarray, s0: np.ndarray, eta: float, cfg: DemoConfig) -> np.ndarray:
    """"Survive iff p0 > p*_-" applied off the parabola too (exact only on it)."""
    pm, pp = fixed_point_branches(cfg.tau, eta, cfg.sigma2)
    return (p0 > pm) & (s0 > 0) if np.isfinite(pp) else np.zeros(p0.shape, bool)


def run_demo(cfg: DemoConfig, progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Integrate, predict and compare; return ``(summary, plot_data)``."""
    t0 = time.perf_counter()
    p0, s0 = _starts(cfg)
    etas = np.asarray(cfg.etas, dtype=np.float64)[:, None]
    common = dict(alpha_p=cfg.alpha_p, eta=etas, sigma2=cfg.sigma2, tau=cfg.tau, solver=cfg.solver, dt=cfg.dt)
    if progress:
        print(f"[demo] {p0.size} starts x {len(cfg.etas)} eta values: long run to t = {cfg.t_end:g}",
              file=sys.stderr)
    long = integrate_modes(p0, s0, t_end=cfg.t_end, n_save=2, progress=progress, **common)
    short = integrate_modes(p0, s0, t_end=cfg.t_plot, n_save=401, **common)
    pred = classify_basin(p0, s0, alpha_p=cfg.alpha_p, eta=etas, sigma2=cfg.sigma2, tau=cfg.tau)
    survived = long.s[-1] > cfg.s_floor
    eta_c = float(collapse_threshold(cfg.tau, cfg.sigma2))
    per_eta, curves = [], []
    for k, eta in enumerate(cfg.etas):
        ok = pred.survives[k] & survived[k]
        fps = fixed_point_stability(tau=cfg.tau, eta=eta, sigma2=cfg.sigma2, alpha_p=cfg.alpha_p)
        regime = "eta = 0: c conserved" if eta == 0 else ("forced collapse: eta > eta_c" if eta > eta_c
                                                          else "bistable: 0 < eta <= eta_c")
        per_eta.append({
            "eta": eta, "regime": regime,
            "fixed_points": [{"name": f.name, "p": f.p, "s": f.s, "kind": f.kind,
                              "eigenvalues": [complex(v).real if complex(v).imag == 0 else str(v)
                                              for v in f.eigenvalues],
                              "slope_1d": f.slope_1d, "kind_1d": f.kind_1d} for f in fps],
            "n_starts": int(p0.size),
            "n_survived_simulated": int(survived[k].sum()),
            "n_survived_predicted": int(pred.survives[k].sum()),
            "fate_match_fraction": float(np.mean(pred.survives[k] == survived[k])),
            "fate_match_fraction_naive_rule": float(np.mean(_naive_rule(p0, s0, eta, cfg) == survived[k])),
            "max_abs_error_p_inf": float(np.abs(long.p[-1, k] - pred.p_inf[k])[ok].max()) if ok.any() else None,
            "max_abs_error_s_inf": float(np.abs(long.s[-1, k] - pred.s_inf[k])[ok].max()) if ok.any() else None,
        })
        pm, pp = fixed_point_branches(cfg.tau, eta, cfg.sigma2)
        if 0 < eta <= eta_c:
            curves.append(separatrix(alpha_p=cfg.alpha_p, eta=eta, sigma2=cfg.sigma2, tau=cfg.tau,
                                     p_range=(cfg.p_range[0] - 0.5, cfg.p_range[1] + 0.5),
                                     s_max=2 * cfg.s_range[1]))
        elif eta == 0:  # boundary of the eta = 0 basin (closed form, see exact._basin_no_decay)
            p = np.linspace(*cfg.p_range, 400)
            curves.append((p, np.where(p > 0, np.maximum(p ** 2 - float(pp) ** 2, 0), p ** 2) / cfg.alpha_p))
        else:
            curves.append(None)
    summary = {
        "command": "demo",
        "config": asdict(cfg),
        "collapse_threshold": eta_c,
        "per_eta": per_eta,
        "fate_match_fraction": float(np.mean(pred.survives == survived)),
        "fate_rule": "exact.classify_basin; simulated fate: survived iff s(t_end) > s_floor",
        "seconds": time.perf_counter() - t0,
    }
    data = {"p0": p0, "s0": s0, "short": short, "pred": pred, "survived": survived, "curves": curves}
    return summary, data


def plot_phase_portraits(cfg: DemoConfig, data: dict[str, Any], path: Path) -> None:
    """The paper's Fig. 3 layout, one panel per eta."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .rhs import mode_rhs

    fig, axes = plt.subplots(1, len(cfg.etas), figsize=(5.2 * len(cfg.etas), 4.6), squeeze=False)
    pg, sg = np.meshgrid(np.linspace(*cfg.p_range, 60), np.linspace(*cfg.s_range, 60))
    short, pred = data["short"], data["pred"]
    for k, (eta, ax) in enumerate(zip(cfg.etas, axes[0])):
        dp, ds, _ = mode_rhs(pg, sg, cfg.tau, alpha_p=cfg.alpha_p, eta=eta, sigma2=cfg.sigma2)
        ax.streamplot(pg, sg, dp, ds, color="0.8", density=1.1, linewidth=0.6, arrowsize=0.7)
        for i in range(data["p0"].size):
            col = "tab:blue" if pred.survives[k, i] else "tab:orange"
            ax.plot(short.p[:, k, i], short.s[:, k, i], color=col, lw=0.8, alpha=0.8)
        miss = pred.survives[k] != data["survived"][k]
        ax.plot(data["p0"], data["s0"], ".", color="k", ms=2.5)
        ax.plot(data["p0"][miss], data["s0"][miss], "x", color="red", ms=7, label="prediction missed")
        p = np.linspace(*cfg.p_range, 300)
        ax.plot(p, p ** 2 / cfg.alpha_p, "k--", lw=1.2, label=r"parabola $s=p^2/\alpha_p$")
        if data["curves"][k] is not None:
            ax.plot(*data["curves"][k], color="tab:red", ls=":", lw=1.8, label="basin boundary")
        if eta == 0:
            ax.axvline(cfg.tau / (1 + cfg.sigma2), color="tab:green", lw=3, alpha=0.3, label="fixed points")
            ax.axhline(0, color="tab:green", lw=3, alpha=0.3)
        for f in fixed_point_stability(tau=cfg.tau, eta=eta, sigma2=cfg.sigma2, alpha_p=cfg.alpha_p):
            filled = f.kind == "stable" or (f.kind == "non-hyperbolic" and f.kind_1d == "stable")
            ax.plot(f.p, f.s, "o", ms=8, mec="k", mfc="k" if filled else "w", zorder=5)
        match = float(np.mean(~miss))
        ax.set_title(rf"$\eta$ = {eta:g}: fate predicted for {100 * match:.0f}% of starts")
        ax.set_xlim(*cfg.p_range)
        ax.set_ylim(*cfg.s_range)
        ax.set_xlabel("$p_j$")
        ax.set_ylabel("$s_j$")
    axes[0, 0].legend(loc="upper left", fontsize=7)
    fig.suptitle(rf"Per-mode dynamics (Eqns 11-12), $\tau$={cfg.tau:g}, $\alpha_p$={cfg.alpha_p:g}, "
                 rf"$\sigma^2$={cfg.sigma2:g}; blue: converges to $p^*_+$, orange: collapses")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    over = {k: v for k, v in (("t_end", args.t_end), ("dt", args.dt), ("n_p", args.n_p), ("n_s", args.n_s),
                              ("n_parabola", args.n_parabola), ("t_plot", args.t_plot)) if v is not None}
    if args.etas is not None:
        over["etas"] = tuple(float(v) for v in args.etas.split(","))
    cfg = replace(DemoConfig(), **over)
    for name in ("n_p", "n_s"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(cfg, name)}")
    summary, data = run_demo(cfg, progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_phase_portraits(cfg, data, out / "phase_portrait.png")
    summary["outputs"] = {"figure": str(out / "phase_portrait.png"), "summary": str(out / "summary.json")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not args.quiet:
        for row in summary["per_eta"]:
            print(f"[demo] eta = {row['eta']:g} ({row['regime']}): fate matched for "
                  f"{100 * row['fate_match_fraction']:.1f}% of {row['n_starts']} starts "
                  f"(naive p0 > p*_- rule: {100 * row['fate_match_fraction_naive_rule']:.1f}%)", file=sys.stderr)
        print(f"[demo] wrote {out / 'phase_portrait.png'} and {out / 'summary.json'}", file=sys.stderr)
    return {"fate_match_fraction": summary["fate_match_fraction"],
            "collapse_threshold": summary["collapse_threshold"], "outputs": summary["outputs"]}


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser("demo", help="theory demo: phase portraits for eta in {0, 0.01, 1}, "
                              "predicted vs simulated fates",
                              description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--etas", default=None, help="comma-separated weight decays (default 0,0.01,1)")
    p.add_argument("--t-end", type=float, default=None, help="length of the fate run (default 2000)")
    p.add_argument("--t-plot", type=float, default=None, help="length drawn (default 40)")
    p.add_argument("--dt", type=float, default=None, help="RK4 step (default 0.02)")
    p.add_argument("--n-p", type=int, default=None, help="grid starts along p (default 14)")
    p.add_argument("--n-s", type=int, default=None, help="grid starts along s (default 10)")
    p.add_argument("--n-parabola", type=int, default=None, help="starts on the parabola (default 13)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_demo)
