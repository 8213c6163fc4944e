"""The alignment-uniformity plane over training (Wang & Isola 2020's style) for every method of a
sweep, next to the effective rank: where contrastive (SimCLR, SwAV) and non-contrastive (BYOL,
SimSiam, DirectPred) runs travel, and where the runs without batch statistics end.

Per run, every spectra snapshot gives ``align = E ||z1 - z2||^2`` over the fixed probe pairs and
``uniform = log E exp(-2 ||zi - zj||^2)`` over all probe outputs (L2-normalised projector outputs,
:mod:`realnet.eval.spectra`); lower is better for both. Panel (a): the path of each setting (mean over
its seeds whose ``spectra.jsonl`` is at hand at each snapshot), and the end of every finished seed
(from its ``summary.json``, so a fresh clone with the committed summaries has them all), (b) the
effective rank (RankMe) of the probe outputs over training. Settings and labels come from the
sweep's ``sweep.json``; ``summary.json`` gives each setting's end as mean and sample std over seeds.

Run: ``python -m figures.fig_align_uniform [SWEEP_DIR] [--out DIR]``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.runs import read_json

from ._common import label_panel, render_figure, sweep_figure_parser, write_table
from analysis.errors import ConfigError

NAME = "fig_align_uniform"
DEFAULT_SWEEP = "figures/out/sweeps/methods_cpu"
KEYS = ("align", "uniform", "effective_rank")


def _label(setting: dict[str, Any]) -> str:
    lab = setting["label"]
    if isinstance(lab, dict) and list(lab) == ["setting"]:
        return str(lab["setting"])
    return lab if isinstance(lab, str) else ", ".join(f"{k}={v}" for k, v in lab.items())


def _settings(sweep: Path) -> list[tuple[str, list[Path]]]:
    manifest = read_json(sweep / "sweep.json")
    if not isinstance(manifest, dict):
        raise ConfigError(f"{str(sweep)!r}: no sweep.json (not a sweep folder)")
    return [(_label(setting), [sweep / run for run in setting["runs"] if (sweep / run / "summary.json").is_file()])
            for table in manifest["tables"] for setting in table["settings"]]


def setting_paths(sweep: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per setting (label), the mean over its finished seeds with a ``spectra.jsonl`` of ``KEYS``
    at each snapshot step common to them; settings without one are left out."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for label, runs in _settings(sweep):
        per_run = []
        for run in runs:
            path = run / "spectra.jsonl"
            if not path.is_file():
                continue
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            lines = [x for x in lines if all(k in x for k in KEYS)]
            if lines:
                per_run.append({x["step"]: x for x in lines})
        if not per_run:
            continue
        steps = sorted(set.intersection(*(set(r) for r in per_run)))
        out[label] = {"step": np.array(steps), "n_seeds": np.array(len(per_run)),
                      **{k: np.array([np.mean([r[s][k] for r in per_run]) for s in steps]) for k in KEYS}}
    return out


def setting_ends(sweep: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per setting (label), ``KEYS`` at the end of each finished seed (the last spectra snapshot
    that ``summary.json`` keeps), one entry per seed."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for label, runs in _settings(sweep):
        ends = [read_json(run / "summary.json").get("spectra") or {} for run in runs]
        ends = [e for e in ends if all(k in e for k in KEYS)]
        if ends:
            out[label] = {k: np.array([e[k] for e in ends], np.float64) for k in KEYS}
    return out


def plot(paths: dict[str, dict[str, np.ndarray]], ends: dict[str, dict[str, np.ndarray]], title: str):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11.5, 5.4), constrained_layout=True)
    last_step = max((q["step"][-1] for q in paths.values()), default=0)
    n_paths = {int(q["n_seeds"]) for q in paths.values()}
    path_is = (f"mean of {n_paths.pop()} seeds" if len(n_paths) == 1 and min(n_paths) > 1 else
               "one seed" if n_paths == {1} else "mean of its seeds with spectra (legend)")
    for i, label in enumerate(ends):
        col, e, p = f"C{i % 10}", ends[label], paths.get(label)
        n_path = int(p["n_seeds"]) if p is not None else 0
        a.plot(e["uniform"], e["align"], "*", color=col, ms=9, alpha=0.85,
               label=f"{label} (path: {n_path} seed{'s' if n_path != 1 else ''}, ends: {e['align'].size})")
        if p is not None:
            a.plot(p["uniform"], p["align"], "-", color=col, lw=1.2, alpha=0.8)
            a.plot(p["uniform"][0], p["align"][0], "o", color=col, mfc="none", ms=5)
            b.plot(p["step"], p["effective_rank"], color=col, lw=1.2)
        b.plot(np.full(e["effective_rank"].size, last_step), e["effective_rank"], "*", color=col,
               ms=7, alpha=0.85)
    a.set(xlabel="uniformity  log E exp(-2 ||zi - zj||^2)  (lower: more uniform)",
          ylabel="alignment  E ||z1 - z2||^2  (lower: more aligned)",
          title=f"alignment-uniformity plane (o start, path: {path_is}, * each seed's end)")
    b.set(xlabel="step", ylabel="effective rank (RankMe) of the probe outputs",
          title="effective rank over training")
    # below the panels, where it covers no data
    fig.legend(*a.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize="x-small")
    for ax, letter in zip((a, b), "ab"):
        label_panel(ax, letter)
    fig.suptitle(title, fontsize=9)
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    p = sweep_figure_parser(NAME, __doc__, DEFAULT_SWEEP)
    args = p.parse_args(argv)
    try:
        paths, ends = setting_paths(Path(args.sweep)), setting_ends(Path(args.sweep))
    except ConfigError as e:
        p.exit(2, f"error: {e}\n")
    if not ends:
        p.exit(2, f"error: {args.sweep!r} has no finished run (run the sweep)\n")
    manifest = read_json(Path(args.sweep) / "sweep.json")
    out, written = render_figure(
        NAME, args.out, lambda: plot(paths, ends, f"{manifest.get('name')}: {manifest.get('description', '')}"))
    rows = {"setting": [], "step": [], **{k: [] for k in KEYS}}
    for label, pth in paths.items():
        for i, s in enumerate(pth["step"]):
            rows["setting"].append(label)
            rows["step"].append(int(s))
            for k in KEYS:
                rows[k].append(float(pth[k][i]))
    written.append(write_table(out / "paths.csv", {k: np.array(v) for k, v in rows.items()}))
    end = {label: {"n_seeds": int(e["align"].size),
                   **{k: float(e[k].mean()) for k in KEYS},
                   **{f"{k}_std": float(e[k].std(ddof=1)) if e[k].size > 1 else None for k in KEYS},
                   "path_seeds": int(paths[label]["n_seeds"]) if label in paths else 0}
           for label, e in ends.items()}
    (out / "summary.json").write_text(json.dumps({"figure": NAME, "sweep": args.sweep,
                                                  "end": end}, indent=2) + "\n")
    print(f"{NAME}: {len(ends)} settings; wrote {len(written) + 1} files to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
