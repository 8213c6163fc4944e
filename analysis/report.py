"""A table across runs (``python -m analysis report RUN_DIR...``): runs are grouped by their
resolved config minus ``seed``; each group gets mean +- std over its runs (sample std, ddof = 1;
empty for a single run) of the final evaluation and of the predicted-vs-measured summary of
:func:`analysis.compare.compare_run`. Writes ``report.csv`` and ``report.md``."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .compare import compare_run
from .runs import RUN_INFO, config_without, load_run, read_json, run_status
from .errors import ConfigError

__all__ = ["REPORT_METRICS", "run_row", "group_runs", "report_runs", "markdown_table"]

#: ``column -> (source, key)``: ``"summary"`` = the run's summary.json, ``"compare"`` = the
#: summary of the comparison, ``"derived"``: ``gain`` = the linear probe minus the same probe on
#: the same seed's random-init trunk (the paired gain the README reports).
REPORT_METRICS: dict[str, tuple[str, str]] = {
    "linear_top1": ("summary", "linear_top1"),
    "gain": ("derived", "gain"),
    "knn_top1": ("summary", "knn_top1"),
    "effective_rank": ("summary", "effective_rank"),
    "collapsed": ("summary", "collapsed"),
    "n_surviving": ("compare", "n_surviving_meas"),
    "fate_share": ("compare", "fate_share"),
    "s_log10_err": ("compare", "s_log10_err_median"),
    "p_err": ("compare", "p_err_median"),
    "alignment": ("compare", "alignment_meas_mean"),
}


def _number(v: Any) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return float("nan")


def run_row(run_dir: str | Path, convention: str = "continuous") -> dict[str, Any]:
    """One run: its config (for grouping), seed, the metrics of :data:`REPORT_METRICS` (NaN where
    missing) and the comparison's verdict (or the reason it could not be made)."""
    run = load_run(run_dir)
    status = run_status(run_dir)
    info = read_json(Path(run_dir) / RUN_INFO)
    row: dict[str, Any] = {"run": str(run.path), "seed": run.cfg.seed,
                           "config": run.config, "status": status,
                           "inert_keys": list(info.get("inert_keys", [])) if isinstance(info, dict) else []}
    comp: dict[str, Any] = {}
    try:
        report, _ = compare_run(run_dir, convention=convention)
        comp = report["summary"]
        row["verdict"] = report["verdict"]
    except ValueError as err:  # unfinished, no snapshots / no matrices: shown as such
        row["verdict"] = f"no comparison: {err}"
    summ = run.summary or {}
    gain = _number(summ.get("linear_top1")) - _number(summ.get("linear_top1_random_init"))
    sources = {"summary": summ, "compare": comp, "derived": {"gain": gain}}
    for col, (src, key) in REPORT_METRICS.items():
        row[col] = _number(sources[src].get(key))
    return row


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = json.dumps(v, sort_keys=True)
    return out


def group_runs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group rows by config minus seed; each group: ``label`` (the config keys that differ
    between groups and that this group's run uses, ``key=value, ...``; ``"all runs"`` for one
    group), ``runs``, ``seeds``."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        key = json.dumps(config_without(r["config"]), sort_keys=True)
        groups.setdefault(key, []).append(r)
    flat = {k: _flatten(json.loads(k)) for k in groups}
    keys = sorted(set().union(*flat.values())) if flat else []
    varying = [k for k in keys if len({f.get(k) for f in flat.values()}) > 1]
    out = []
    for key, members in groups.items():
        unused = set(members[0].get("inert_keys", ()))  # written by the trainer to run.json
        label = ", ".join(f"{k}={json.loads(flat[key][k]) if k in flat[key] else None}"
                          for k in varying if k not in unused) or "all runs"
        out.append({"label": label, "runs": members,
                    "seeds": sorted((m["seed"] for m in members), key=lambda s: (s is None, s))})
    return out


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    v = np.array([x for x in values if math.isfinite(x)])
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else float("nan")), int(v.size)


def _fmt(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.4g}" + (f" +- {std:.2g}" if math.isfinite(std) else "")


def _run_names(groups: list[dict[str, Any]]) -> dict[str, str]:
    """Each run folder named relative to the folder all the runs share (``base/seed0``)."""
    paths = [str(Path(r["run"]).resolve()) for g in groups for r in g["runs"]]
    root = Path(os.path.commonpath(paths)) if len(paths) > 1 else Path(paths[0]).parent
    if str(root) in paths:  # one run, or one run folder holding the others: keep a name
        root = root.parent
    return {r["run"]: Path(r["run"]).resolve().relative_to(root).as_posix()
            for g in groups for r in g["runs"]}


def markdown_table(groups: list[dict[str, Any]]) -> str:
    """The markdown table of :func:`report_runs` (one line per group, naming its run folders)."""
    cols = list(REPORT_METRICS)
    names = _run_names(groups)
    lines = ["| group | runs | n | not in the statistics | " + " | ".join(cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for g in groups:
        cells = [_fmt(*g["stats"][c][:2]) for c in cols]
        runs = ", ".join(names[r["run"]] for r in g["runs"])
        lines.append(f"| {g['label']} | {runs} | {len(g['runs'])} | {g['unfinished']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None,
                convention: str = "continuous") -> tuple[list[dict[str, Any]], str]:
    """Build the table across ``run_dirs``; write ``report.csv`` / ``report.md`` into ``out``
    when given. Returns ``(groups, markdown)``; each group has ``stats[col] = (mean, std, n)``."""
    if not run_dirs:
        raise ConfigError("run_dirs: give at least one run folder")
    rows = [run_row(d, convention) for d in run_dirs]
    groups = group_runs(rows)
    for g in groups:  # diverged, partial and unfinished runs are listed, not averaged
        done = [r for r in g["runs"] if r["status"] == "done"]
        g["stats"] = {c: _mean_std([r[c] for r in done]) for c in REPORT_METRICS}
        g["unfinished"] = ", ".join(f"seed {r['seed']}: {r['status']}" for r in g["runs"]
                                    if r["status"] != "done") or "-"
    md = markdown_table(groups)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "report.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["group", "runs", "n_runs", "seeds", "not_in_statistics"]
                       + [f"{c}_{s}" for c in REPORT_METRICS for s in ("mean", "std", "n")])
            for g in groups:
                w.writerow([g["label"], " ".join(r["run"] for r in g["runs"]), len(g["runs"]),
                            " ".join(map(str, g["seeds"])), g["unfinished"]]
                           + [f"{x:.6g}" if isinstance(x, float) else x
                              for c in REPORT_METRICS for x in g["stats"][c]])
        (out / "report.md").write_text(md + "\n")
    return groups, md
