"""Paper Fig. 6 at the CPU recipe: a symmetrised linear predictor without EMA, probe accuracy and
collapse against the predictor's relative learning rate ``alpha_p``, with and without weight
decay on the predictor; and whether Eqn 17, evaluated early, predicts which runs fail.

Input: the run folders of ``figures/sweeps/fig6_cpu.toml`` (finished runs with their spectra).
Per run: the final linear probe and the same seed's random-init probe, the trainer's collapse
rule, the final effective rank; and at the early snapshots (5, 10, 15 % of the run) the share of
alive modes for which Eqn 17 holds (:func:`analysis.eqn17.eqn17_modes`).

A run *fails* when its probe is not above its own random-init trunk's (it learned nothing the
random trunk did not have); *collapsed* is the trainer's rule (RankMe < 1.5 or the normalised
std below 0.1/sqrt(d)). The forecasts of failure, each from the state at 15 % of the run:

- ``eqn17``: Eqn 17 fails for some alive mode (THEORY.md section 3: without EMA and with a
  symmetric ``Wp`` it can fail early, and the run then collapses);
- baselines from the same information: ``none_fail``; ``persistence`` (the collapse rule already
  holds at the cutoff, on the probe batch); ``rank_threshold`` (effective rank at the cutoff
  below a threshold fitted on the other runs, leave-one-out).

Run: ``python -m figures.fig6_alpha_p [SWEEP_DIR] [--out DIR]``.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.cutoff import cutoff_state
from analysis.eqn17 import eqn17_modes
from analysis.runs import load_run, read_json

from ._common import label_panel, render_figure, sweep_figure_parser, write_table
from analysis.errors import ConfigError

NAME = "fig6_alpha_p"
DEFAULT_SWEEP = "figures/out/sweeps/fig6_cpu"
CUTOFFS = (0.05, 0.10, 0.15)
CUTOFF = 0.15


def _cutoff_line(run_dir: Path, step: int) -> dict[str, Any]:
    for line in (run_dir / "spectra.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d.get("step") == step:
            return d
    raise ConfigError(f"{run_dir}: no spectra line at step {step}")


def run_row(run_dir: Path) -> dict[str, Any]:
    """The numbers of one finished run (see the module docstring)."""
    summ = read_json(run_dir / "summary.json")
    if not isinstance(summ, dict):
        raise ConfigError(f"{run_dir}: not finished (no summary.json)")
    run = load_run(run_dir)
    cfg = run.cfg
    row: dict[str, Any] = {
        "run": str(run_dir), "alpha_p": cfg.predictor.lr_ratio, "wd_p": cfg.predictor_weight_decay,
        "seed": int(cfg.seed or 0), "linear_top1": float(summ["linear_top1"]),
        "random_init": float(summ["linear_top1_random_init"]),
        "collapsed": bool(summ["collapsed"]), "effective_rank": float(summ["effective_rank"])}
    row["gain"] = row["linear_top1"] - row["random_init"]
    row["fails"] = bool(row["gain"] <= 0)
    for c in CUTOFFS:
        cut = cutoff_state(run, cutoff=c)
        ok = eqn17_modes(cut)
        row[f"eqn17_share_{c:.2f}"] = float(np.mean(ok)) if ok is not None and ok.size else math.nan
        if c == CUTOFF:
            row["cutoff_step"] = int(cut.step)
            row["eqn17_holds"] = bool(ok is not None and bool(np.all(ok)))
            line = _cutoff_line(run_dir, cut.step)
            d = cfg.model.proj_dim
            row["rank_cutoff"] = float(line["effective_rank"])
            row["collapsed_cutoff"] = bool(line["effective_rank"] < cfg.eval.collapse_rank or
                                           line["normalised_std"] < cfg.eval.collapse_std_fraction / math.sqrt(d))
    return row


def _loo_threshold(ranks: np.ndarray, fails: np.ndarray, i: int) -> float:
    """The effective-rank threshold that best separates failing from working runs, fitted on every
    run but ``i`` (the midpoint between the two classes' medians; inf when one class is empty)."""
    keep = np.arange(len(ranks)) != i
    r, f = ranks[keep], fails[keep]
    if f.all() or (~f).all():
        return math.inf if f.all() else -math.inf
    return float(0.5 * (np.median(r[f]) + np.median(r[~f])))


def forecasts(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Forecast of ``fails`` per run, for the theory and the baselines (module docstring)."""
    ranks = np.array([r["rank_cutoff"] for r in rows])
    fails = np.array([r["fails"] for r in rows])
    return {
        "eqn17": np.array([not r["eqn17_holds"] for r in rows]),
        "none_fail": np.zeros(len(rows), dtype=bool),
        "persistence": np.array([r["collapsed_cutoff"] for r in rows]),
        "rank_threshold": np.array([ranks[i] < _loo_threshold(ranks, fails, i) for i in range(len(rows))]),
    }


def score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    acc = float(np.mean(pred == truth))
    rec = [float(np.mean(pred[truth == v] == v)) for v in (True, False) if (truth == v).any()]
    return {"accuracy": acc, "balanced_accuracy": float(np.mean(rec)), "n": int(len(truth))}


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a, w in sorted({(r["alpha_p"], r["wd_p"]) for r in rows}):
        rs = [r for r in rows if r["alpha_p"] == a and r["wd_p"] == w]
        v = lambda k: np.array([r[k] for r in rs], dtype=float)  # noqa: E731
        sd = lambda x: float(x.std(ddof=1)) if len(x) > 1 else math.nan  # noqa: E731
        out.append({"alpha_p": a, "wd_p": w, "n": len(rs),
                    "linear_top1": float(v("linear_top1").mean()), "linear_top1_std": sd(v("linear_top1")),
                    "gain": float(v("gain").mean()), "gain_std": sd(v("gain")),
                    "effective_rank": float(v("effective_rank").mean()),
                    "collapsed": int(sum(r["collapsed"] for r in rs)),
                    "fails": int(sum(r["fails"] for r in rs)),
                    "eqn17_fails": int(sum(not r["eqn17_holds"] for r in rs))})
    return out


def plot(rows: list[dict[str, Any]], table: list[dict[str, Any]]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12.0, 4.3), constrained_layout=True)
    styles = {0.0: ("C3", "predictor wd 0"), 4e-4: ("C0", "predictor wd 4e-4")}
    rand = np.array([r["random_init"] for r in rows])
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(r"$\alpha_p$ (predictor lr / online lr)")
    a, b, c = axes
    a.axhspan(rand.mean() - rand.std(), rand.mean() + rand.std(), color="0.85", lw=0)
    a.axhline(rand.mean(), color="0.5", lw=1.0,
              label=f"random-init trunk ({rand.mean():.1f} $\\pm$ {rand.std():.1f})")
    for w, (col, lab) in styles.items():
        t = [x for x in table if x["wd_p"] == w]
        rs = [r for r in rows if r["wd_p"] == w]
        if not t:
            continue
        xs = [x["alpha_p"] for x in t]
        a.errorbar(xs, [x["linear_top1"] for x in t], yerr=[x["linear_top1_std"] for x in t],
                   color=col, marker="o", capsize=3, label=lab)
        a.plot([r["alpha_p"] * (1.06 if w else 0.94) for r in rs], [r["linear_top1"] for r in rs],
               ".", color=col, alpha=0.5, ms=4)
        b.plot(xs, [x["effective_rank"] for x in t], color=col, marker="o", label=lab)
        b.plot([r["alpha_p"] * (1.06 if w else 0.94) for r in rs], [r["effective_rank"] for r in rs],
               ".", color=col, alpha=0.5, ms=4)
        for r in rs:
            c.plot(r["alpha_p"] * (1.06 if w else 0.94), r[f"eqn17_share_{CUTOFF:.2f}"],
                   "x" if r["fails"] else "o", color=col, mfc="none", ms=6)
    b.axhline(1.5, color="0.5", ls=":", lw=0.8, label="collapse rule (RankMe 1.5)")
    c.plot([], [], "x", color="0.3", label="run fails (probe $\\leq$ random init)")
    c.plot([], [], "o", color="0.3", mfc="none", label="run learns")
    a.set(ylabel="linear probe top-1 (%)", title="probe accuracy (mean $\\pm$ sd, seeds as dots)")
    b.set(ylabel="effective rank (RankMe), end", title="final effective rank")
    c.set(ylabel="share of alive modes where Eqn 17 holds",
          title=f"Eqn 17 at {CUTOFF:.0%} of the run", ylim=(-0.05, 1.05))
    for ax, letter in zip(axes, "abc"):
        label_panel(ax, letter)
        # under the panel, where it covers no data point
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize="small")
    fig.suptitle("Fashion-MNIST CPU recipe, 5000 steps: SimSiam-style (no EMA), symmetrised linear "
                 "predictor (paper's Fig. 6)", fontsize=9)
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    p = sweep_figure_parser(NAME, __doc__, DEFAULT_SWEEP)
    p.add_argument("--redraw", action="store_true",
                   help="draw the figure again from OUT/fig6_alpha_p/summary.json (the numbers it "
                        "plotted) instead of the runs, whose spectra a fresh clone lacks")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.redraw:  # the figure again from the numbers it plotted (no run needed)
        done = read_json(Path(args.out) / NAME / "summary.json")
        if not isinstance(done, dict) or "runs" not in done:
            p.exit(2, f"error: --redraw: {str(Path(args.out) / NAME / 'summary.json')!r} holds no runs\n")
        out, written = render_figure(NAME, args.out, lambda: plot(done["runs"], done["cells"]))
        print(f"{NAME}: redrawn from its summary.json ({len(done['runs'])} runs) into {out}")
        return 0
    folders = sorted(d.parent for d in Path(args.sweep).glob("*/seed*/summary.json"))
    if not folders:
        p.exit(2, f"error: {args.sweep!r} holds no finished runs (run figures/sweeps/fig6_cpu.toml)\n")
    try:
        rows = [run_row(d) for d in folders]
    except ConfigError as e:
        p.exit(2, f"error: {e}\n(the per-run numbers need the runs' spectra/; a fresh clone has the "
                  "summaries only: rerun the sweep with --rerun-without-spectra)\n")
    table = cells(rows)
    truth = np.array([r["fails"] for r in rows])
    truth_c = np.array([r["collapsed"] for r in rows])
    fc = forecasts(rows)
    scores = {name: {"fails": score(pred, truth), "collapsed": score(pred, truth_c)}
              for name, pred in fc.items()}
    out, written = render_figure(NAME, args.out, lambda: plot(rows, table))
    keys = list(rows[0])
    written.append(write_table(out / "runs.csv", {k: np.array([r[k] for r in rows]) for k in keys}))
    summary = {"figure": NAME, "sweep": args.sweep, "cutoff": CUTOFF, "n_runs": len(rows),
               "cells": table, "forecast_scores": scores, "runs": rows,
               "seconds": round(time.perf_counter() - t0, 2)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(f"{NAME}: {len(rows)} runs; wrote {len(written) + 1} files to {out}")
    for name, sc in scores.items():
        print(f"  {name:>15}: fails bacc {sc['fails']['balanced_accuracy']:.2f} "
              f"(acc {sc['fails']['accuracy']:.2f}); collapsed bacc {sc['collapsed']['balanced_accuracy']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
