"""Aggregate a sweep's run folders into paper-style tables (the layout of the paper's Tables 6-7):
mean +- standard error over seeds of the final linear-probe top-1, its gain over the same probe
on the same seed's randomly initialised trunk (a paired difference), the kNN top-1, the effective
rank (RankMe of the test-set projector outputs) and the number of collapsed runs, per table cell;
the random-init and raw-pixel probes as reference rows; and, where the sweep file gives the
paper's numbers, which of the paper's orderings the sweep reproduces.

Run: ``python -m realnet.sweeps.tables DIR`` (``DIR`` written by :mod:`realnet.sweeps`; reads
``DIR/sweep.json`` and the run folders only). Writes ``DIR/tables.md`` (markdown),
``DIR/results.csv`` (one row per table cell) and ``DIR/runs.csv`` (one row per run).

Conventions. ``std`` is the sample standard deviation over the finished seeds (``ddof = 1``;
empty when fewer than two finished), ``se = std / sqrt(n)``; the markdown shows ``mean ± se``.
An ordering of two cells (the paper has ``a > b``) is *reproduced* when the sweep's difference
of means has the same sign and exceeds twice its standard error
``sqrt(se_a^2 + se_b^2)``, *reversed* when it has the other sign and exceeds it, *within noise*
otherwise, and *too few seeds* while a cell has fewer than two finished runs; pairs are taken
within a 1-D table, and within a row or a column of a 2-D one. A run that stopped on NaN/inf
(``nonfinite``) has no accuracies; it counts as collapsed and is left out of the means (the cell says how many runs the
mean has). ``collapsed`` of a finished run is the trainer's own rule (``summary.json``).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.runs import SUMMARY, read_json, run_status

from analysis.textio import doc_summary, write_table
from analysis.errors import ConfigError

__all__ = ["METRICS", "mean_std", "run_record", "aggregate_cell", "paper_orderings", "sweep_results",
           "markdown_tables", "write_tables", "main"]

#: Summary keys averaged over seeds, with their column titles.
METRICS: dict[str, str] = {
    "linear_top1": "linear top-1 (%)",
    "gain": "gain over random init (points)",
    "knn_top1": "kNN top-1 (%)",
    "effective_rank": "eff. rank",
}
_BASELINE = "linear_top1_random_init"
_PIXELS = "linear_top1_pixels"


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, sample std (ddof=1), n)`` of the finite values; NaN mean with ``n = 0`` and NaN
    std with ``n < 2``."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    n = int(v.size)
    mean = float(v.mean()) if n else float("nan")
    std = float(v.std(ddof=1)) if n >= 2 else float("nan")
    return mean, std, n


def run_record(folder: str | Path) -> dict[str, Any]:
    """One run folder as a flat record: ``status`` (:func:`analysis.runs.run_status`), the
    metrics, ``collapsed`` (bool; True for ``nonfinite``, None while undecided) and the
    random-init and pixel probe baselines."""
    folder = Path(folder)
    status = run_status(folder)
    rec: dict[str, Any] = {k: float("nan") for k in (*METRICS, _BASELINE, _PIXELS)}
    if status == "done":
        summary = read_json(folder / SUMMARY)
        rec["status"] = "done"
        for k in (*METRICS, _BASELINE, _PIXELS):
            v = summary.get(k)
            rec[k] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else \
                float("nan")
        rec["gain"] = rec["linear_top1"] - rec[_BASELINE]  # paired: the same seed's trunk
        rec["collapsed"] = bool(summary.get("collapsed", False))
        rec["wall_time_s"] = summary.get("wall_time_s", float("nan"))
        return rec
    rec.update(status=status, collapsed=True if status == "nonfinite" else None)
    rec["wall_time_s"] = float("nan")
    return rec


def aggregate_cell(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean/std/n of each metric over the finished runs, and the counts: ``n_runs`` (planned),
    ``n_done``, ``n_nonfinite``, ``n_collapsed`` (collapsed finished runs + nonfinite runs)."""
    out: dict[str, Any] = {
        "n_runs": len(records),
        "n_done": sum(r["status"] == "done" for r in records),
        "n_nonfinite": sum(r["status"] == "nonfinite" for r in records),
        "n_collapsed": sum(bool(r.get("collapsed")) for r in records),
    }
    done = [r for r in records if r["status"] == "done"]
    for k in (*METRICS, _BASELINE, _PIXELS):
        m, s, n = mean_std([r[k] for r in done])
        out[f"{k}_mean"], out[f"{k}_std"], out[f"{k}_n"] = m, s, n
        out[f"{k}_se"] = s / math.sqrt(n) if n >= 2 else float("nan")
    return out


def paper_orderings(cells: Sequence[dict[str, Any]], two_d: bool) -> list[dict[str, Any]]:
    """Each pair of cells that both have a paper number (different ones) and finished runs:
    the paper's and the sweep's difference of linear top-1 (``a - b``), its standard error and the
    verdict (module docstring). For a 2-D table only pairs in one row or one column."""
    have = [c for c in cells if c.get("paper") is not None and c["linear_top1_n"] > 0]
    out = []
    for i, a in enumerate(have):
        for b in have[i + 1:]:
            if two_d and a["row"] != b["row"] and a["col"] != b["col"]:
                continue
            dp = a["paper"] - b["paper"]
            if dp == 0:
                continue
            d = a["linear_top1_mean"] - b["linear_top1_mean"]
            se = math.sqrt(a["linear_top1_se"] ** 2 + b["linear_top1_se"] ** 2)
            if not math.isfinite(se):
                verdict = "too few seeds"  # a cell with one finished run has no standard error
            elif abs(d) > 2 * se:
                verdict = "reproduced" if d * dp > 0 else "reversed"
            else:
                verdict = "within noise"
            out.append({"a": a["setting"], "b": b["setting"], "paper_diff": dp, "diff": d,
                        "se": se, "verdict": verdict})
    return out


def _load_manifest(out: Path) -> dict[str, Any]:
    path = out / "sweep.json"
    if not path.is_file():
        raise ConfigError(f"DIR: {str(out)!r} has no sweep.json; not a sweep folder (run "
                         "python -m realnet.sweeps first)")
    data = read_json(path)
    problem = "not JSON" if data is None else _manifest_problem(data)
    if problem is not None:
        raise ConfigError(f"DIR: {str(path)!r} is not a sweep manifest ({problem}); the sweep "
                         "runner rewrites it: rerun python -m realnet.sweeps FILE --out DIR")
    return data


def _manifest_problem(data: Any) -> str | None:
    """What in ``data`` is not the schema that :func:`realnet.sweeps.runner.write_manifest`
    writes, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        return "no list 'tables'"
    for i, table in enumerate(data["tables"]):
        where = f"tables[{i}]"
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            return f"{where} has no name"
        if not all(isinstance(table.get(k), (str, type(None))) for k in ("rows", "cols")):
            return f"{where}: 'rows' and 'cols' are knob names or null"
        if not isinstance(table.get("settings"), list):
            return f"{where} has no list 'settings'"
        for j, setting in enumerate(table["settings"]):
            if not (isinstance(setting, dict) and isinstance(setting.get("label"), dict)
                    and isinstance(setting.get("runs"), list)
                    and all(isinstance(r, str) for r in setting["runs"])):
                return f"{where}.settings[{j}] needs a 'label' object and a list of 'runs'"
    return None


def sweep_results(out: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]],
                                             list[dict[str, Any]]]:
    """``(manifest, cells, runs)``: one aggregated row per table cell and one record per
    distinct run folder."""
    out = Path(out)
    manifest = _load_manifest(out)
    records: dict[str, dict[str, Any]] = {}
    cells = []
    for table in manifest["tables"]:
        for setting in table["settings"]:
            recs = []
            for folder in setting["runs"]:
                if folder not in records:
                    records[folder] = {"run": folder, **run_record(out / folder)}
                recs.append(records[folder])
            label = setting["label"]
            cells.append({"table": table["name"], "paper": setting.get("paper"),
                          "row": label.get(table["rows"]),
                          "col": label.get(table["cols"]) if table["cols"] else None,
                          "setting": ", ".join(f"{k}={v}" for k, v in label.items()),
                          "runs": " ".join(setting["runs"]),
                          **aggregate_cell(recs)})
    return manifest, cells, list(records.values())


# ---------------------------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------------------------
def _fmt(cell: dict[str, Any], metric: str) -> str:
    m, s, n = cell[f"{metric}_mean"], cell[f"{metric}_se"], cell[f"{metric}_n"]
    if n == 0:
        return "NaN" if cell["n_nonfinite"] else "-"
    text = f"{m:.2f}" if not math.isfinite(s) else f"{m:.2f} ± {s:.2f}"
    if n < cell["n_runs"]:
        text += f" (n={n})"
    return text


def _collapsed(cell: dict[str, Any]) -> str:
    """``collapsed/judged`` over the runs with a verdict (finished or NaN), noting NaN runs and
    runs not finished yet."""
    judged = cell["n_done"] + cell["n_nonfinite"]
    text = f"{cell['n_collapsed']}/{judged}"
    notes = [f"{cell['n_nonfinite']} NaN"] if cell["n_nonfinite"] else []
    if judged < cell["n_runs"]:
        notes.append(f"{cell['n_runs'] - judged} not finished")
    return text + (f" ({', '.join(notes)})" if notes else "")


def _short(key: str | None) -> str:
    return "" if key is None else key.split(".")[-1]


def _label(v: Any) -> str:
    return "-" if v is None else str(v)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table_markdown(table: dict[str, Any], cells: list[dict[str, Any]], seeds: int) -> list[str]:
    lines = [f"### `{table['name']}`: {table['title']}", ""]
    if table.get("note"):
        lines += [table["note"], ""]
    has_paper = any(c.get("paper") is not None for c in cells)
    if table["cols"] is None:
        head = [_short(table["rows"]), *METRICS.values(), "collapsed / finished"]
        head += ["paper (STL-10 top-1)"] if has_paper else []
        lines += [_row(head), _row(["---"] * len(head))]
        for c in cells:
            paper = ([_label(c.get("paper"))] if has_paper else [])
            lines.append(_row([_label(c["row"]), *(_fmt(c, m) for m in METRICS),
                               _collapsed(c), *paper]))
    else:
        rows = list(dict.fromkeys(c["row"] for c in cells))
        cols = list(dict.fromkeys(c["col"] for c in cells))
        by = {(c["row"], c["col"]): c for c in cells}
        corner = f"{_short(table['rows'])} \\ {_short(table['cols'])}"
        grids = [*METRICS.items(), ("collapsed", "collapsed runs / finished")]
        grids += [("paper", "paper (STL-10 top-1)")] if has_paper else []
        for metric, title in grids:
            lines += [f"**{title}**", "", _row([corner, *map(_label, cols)]),
                      _row(["---"] * (len(cols) + 1))]
            for r in rows:
                lines.append(_row([_label(r), *(
                    "" if (r, c) not in by else
                    _collapsed(by[(r, c)]) if metric == "collapsed" else
                    _label(by[(r, c)].get("paper")) if metric == "paper" else _fmt(by[(r, c)], metric)
                    for c in cols)]))
            lines.append("")
    for key, what in ((_BASELINE, "a randomly initialised trunk (same recipe and seeds)"),
                      (_PIXELS, "the raw pixels (same labelled subset)")):
        ref = mean_std([c[f"{key}_mean"] for c in cells])
        if ref[2]:
            lines += ["", f"Reference: the same linear probe on {what}: {ref[0]:.2f} % "
                          "(mean over the cells)."]
    lines += ["", f"Mean ± standard error over {seeds} seed(s) (sample std / sqrt(n)); the gain "
                  "is the paired difference with the same seed's random-init trunk; collapsed = "
                  "the trainer's collapse rule, NaN runs count as collapsed."]
    pairs = paper_orderings(cells, table["cols"] is not None)
    if pairs:
        counts = {v: sum(p["verdict"] == v for p in pairs)
                  for v in ("reproduced", "reversed", "within noise", "too few seeds")}
        lines += ["", f"**The paper's orderings** (linear top-1, a - b): "
                      f"{counts['reproduced']} reproduced, {counts['reversed']} reversed, "
                      f"{counts['within noise']} within noise (|diff| <= 2 se), "
                      f"{counts['too few seeds']} with too few seeds, of {len(pairs)}.", "",
                  _row(["a", "b", "paper a - b", "this sweep a - b", "verdict"]),
                  _row(["---"] * 5)]
        for p in pairs:
            ours = "-" if not math.isfinite(p["se"]) else f"{p['diff']:+.2f} ± {p['se']:.2f}"
            lines.append(_row([p["a"], p["b"], f"{p['paper_diff']:+.2f}", ours, p["verdict"]]))
    return lines + [""]


def markdown_tables(manifest: dict[str, Any], cells: list[dict[str, Any]]) -> str:
    """All tables of a sweep as markdown (1-D tables: one row per setting; 2-D tables: one grid
    per metric, rows x cols)."""
    lines = [f"## Sweep `{manifest['name']}`", ""]
    if manifest.get("description"):
        lines += [manifest["description"], ""]
    lines += [f"Base config `{Path(manifest['base']).stem}`, overrides: "
              f"`{' '.join(manifest['overrides']) or '(none)'}`; seeds {manifest['seeds']}.", ""]
    for table in manifest["tables"]:
        lines += _table_markdown(table, [c for c in cells if c["table"] == table["name"]],
                                 len(manifest["seeds"]))
    return "\n".join(lines).rstrip() + "\n"


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: np.array([("" if r.get(k) is None else r.get(k)) for r in rows], dtype=object)
            for k in keys}


def write_tables(out: str | Path) -> list[Path]:
    """Write ``tables.md``, ``results.csv`` and ``runs.csv`` into the sweep folder ``out``."""
    out = Path(out)
    manifest, cells, runs = sweep_results(out)
    md = out / "tables.md"
    md.write_text(markdown_tables(manifest, cells))
    paths = [md]
    if cells:
        paths.append(write_table(out / "results.csv", _columns(cells)))
    if runs:
        paths.append(write_table(out / "runs.csv", _columns(runs)))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realnet.sweeps.tables",
                                description=doc_summary(__doc__))
    p.add_argument("dir", help="sweep output folder (holds sweep.json)")
    p.add_argument("--print", action="store_true", help="also print the markdown")
    args = p.parse_args(argv)
    try:
        paths = write_tables(args.dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(x) for x in paths))
    if args.print:
        print(paths[0].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
