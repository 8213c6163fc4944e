"""The alignment-uniformity plane over training (Wang & Isola 2020's style) for every method of a
sweep, next to the effective rank: where contrastive (SimCLR, SwAV) and non-contrastive (BYOL,
SimSiam, DirectPred) runs travel, and where the runs without batch statistics end.

Per run, every spectra snapshot gives ``align = E ||z1 - z2||^2`` over the fixed probe pairs and
``uniform = log E exp(-2 ||zi - zj||^2)`` over all probe outputs (L2-normalised projector outputs,
:mod:`realnet.spectra`); lower is better for both. Panel (a): the path of each setting (mean over
its seeds at each snapshot; the end marked), (b) the effective rank (RankMe) of the probe outputs
over training. Settings and labels come from the sweep's ``sweep.json``.

Run: ``python -m figures.fig_align_uniform [SWEEP_DIR] [--out DIR]``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.runs import read_json

from ._common import label_panel, render_figure, sweep_figure_parser, write_table

NAME = "fig_align_uniform"
DEFAULT_SWEEP = "figures/out/sweeps/methods_cpu"
KEYS = ("align", "uniform", "effective_rank")


def _label(setting: dict[str, Any]) -> str:
    lab = setting["label"]
    if isinstance(lab, dict) and list(lab) == ["setting"]:
        return str(lab["setting"])
    return lab if isinstance(lab, str) else ", ".join(f"{k}={v}" for k, v in lab.items())


def setting_paths(sweep: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per setting (label), the mean over its finished seeds of ``KEYS`` at each snapshot step
    common to them; settings without a finished run with spectra are left out."""
    manifest = read_json(sweep / "sweep.json")
    if not isinstance(manifest, dict):
        raise ValueError(f"{str(sweep)!r}: no sweep.json (not a sweep folder)")
    out: dict[str, dict[str, np.ndarray]] = {}
    for table in manifest["tables"]:
        for setting in table["settings"]:
            per_run = []
            for run in setting["runs"]:
                path = sweep / run / "spectra.jsonl"
                if not (sweep / run / "summary.json").is_file() or not path.is_file():
                    continue
                lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
                lines = [x for x in lines if all(k in x for k in KEYS)]
                if lines:
                    per_run.append({x["step"]: x for x in lines})
            if not per_run:
                continue
            steps = sorted(set.intersection(*(set(r) for r in per_run)))
            out[_label(setting)] = {"step": np.array(steps), "n_seeds": np.array(len(per_run)),
                                    **{k: np.array([np.mean([r[s][k] for r in per_run]) for s in steps])
                                       for k in KEYS}}
    return out


def plot(paths: dict[str, dict[str, np.ndarray]], title: str):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, 4.4), constrained_layout=True)
    for i, (label, p) in enumerate(paths.items()):
        col = f"C{i % 10}"
        a.plot(p["uniform"], p["align"], "-", color=col, lw=1.2, alpha=0.8,
               label=f"{label} ({int(p['n_seeds'])} seed{'s' if p['n_seeds'] > 1 else ''})")
        a.plot(p["uniform"][0], p["align"][0], "o", color=col, mfc="none", ms=5)
        a.plot(p["uniform"][-1], p["align"][-1], "*", color=col, ms=11)
        b.plot(p["step"], p["effective_rank"], color=col, lw=1.2)
    a.set(xlabel="uniformity  log E exp(-2 ||zi - zj||^2)  (lower: more uniform)",
          ylabel="alignment  E ||z1 - z2||^2  (lower: more aligned)",
          title="alignment-uniformity plane (o start, * end)")
    b.set(xlabel="step", ylabel="effective rank (RankMe) of the probe outputs",
          title="effective rank over training")
    a.legend(loc="best", fontsize="x-small")
    for ax, letter in zip((a, b), "ab"):
        label_panel(ax, letter)
    fig.suptitle(title, fontsize=9)
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    p = sweep_figure_parser(NAME, __doc__, DEFAULT_SWEEP)
    args = p.parse_args(argv)
    try:
        paths = setting_paths(Path(args.sweep))
    except ValueError as e:
        p.exit(2, f"error: {e}\n")
    if not paths:
        p.exit(2, f"error: {args.sweep!r} has no finished run with spectra.jsonl (run the sweep, or "
                  "--rerun-without-spectra on a fresh clone)\n")
    manifest = read_json(Path(args.sweep) / "sweep.json")
    out, written = render_figure(
        NAME, args.out, lambda: plot(paths, f"{manifest.get('name')}: {manifest.get('description', '')}"))
    rows = {"setting": [], "step": [], **{k: [] for k in KEYS}}
    for label, pth in paths.items():
        for i, s in enumerate(pth["step"]):
            rows["setting"].append(label)
            rows["step"].append(int(s))
            for k in KEYS:
                rows[k].append(float(pth[k][i]))
    written.append(write_table(out / "paths.csv", {k: np.array(v) for k, v in rows.items()}))
    end = {label: {"n_seeds": int(pth["n_seeds"]), **{k: float(pth[k][-1]) for k in KEYS}}
           for label, pth in paths.items()}
    (out / "summary.json").write_text(json.dumps({"figure": NAME, "sweep": args.sweep,
                                                  "end": end}, indent=2) + "\n")
    print(f"{NAME}: {len(paths)} settings; wrote {len(written) + 1} files to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
