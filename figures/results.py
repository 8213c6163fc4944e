"""The tables of RESULTS.md, generated from the committed sweep and scorecard files
(``python -m figures.results [--check]``).

RESULTS.md marks each generated table with a line ``<!-- generated: KIND ARG... -->`` and ends it
with ``<!-- end generated -->``; this module rewrites what lies between from the files the
arguments name, so a number in a table is the committed file's, never typed by hand. Kinds:

- ``sweep DIR TABLE``: one row per setting of table ``TABLE`` of the sweep folder ``DIR``
  (``DIR/results.csv``, :mod:`realnet.sweeps.tables`): linear probe, the same probe on the
  random-init trunk, the paired gain, kNN, effective rank (each mean ± sample std over seeds) and
  collapsed / finished runs.
- ``questions DIR``: the pre-declared questions of the scorecard in ``DIR/scorecard.json``
  (:mod:`analysis.questions`): the declared theory against the strongest theory-free forecaster.
- ``numerics FAST PLAIN``: the numerics tool's verdict (:mod:`realnet.tools.numerics`) on the
  settings two sweeps share, run by run (bf16 against fp32).
- ``challengers DIR``: the same card's challengers (``analysis.questions.CHALLENGERS``), against
  the strongest baseline and, paired, against the theory each challenges.

``--check`` rewrites nothing and exits 1 when a block differs from what the files give (the test
suite runs it).
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import re
import sys
from pathlib import Path
from typing import Callable, Sequence

from analysis.errors import ConfigError

__all__ = ["render", "BLOCK", "main"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "RESULTS.md"
#: A generated block: its opening line (kind and arguments), its text, its closing line.
BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _num(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan


def _pm(row: dict[str, str], key: str, digits: int = 2) -> str:
    mean, std = _num(row.get(f"{key}_mean", "")), _num(row.get(f"{key}_std", ""))
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


def _sweep(folder: str, table: str) -> str:
    path = ROOT / folder / "results.csv"
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep results (run python -m realnet.sweeps.tables)")
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["table"] == table]
    if not rows:
        raise ConfigError(f"{path}: no table {table!r}")
    out = ["| setting | linear probe top-1 | same probe, random-init trunk | gain | kNN top-1 | "
           "effective rank | collapsed / finished |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['setting'].removeprefix('setting=')} | {_pm(r, 'linear_top1')} | "
                   f"{_pm(r, 'linear_top1_random_init')} | {_pm(r, 'gain')} | {_pm(r, 'knn_top1')} | "
                   f"{_pm(r, 'effective_rank')} | {r['n_collapsed']}/{r['n_done']} |")
    return "\n".join(out) + "\n"


def _signed(x: float) -> str:
    return f"{x:+.3f}"


@functools.lru_cache(maxsize=None)
def _card_questions(folder: str) -> tuple[dict, ...]:
    """The ``questions`` of ``folder/scorecard.json`` (read once per render)."""
    path = ROOT / folder / "scorecard.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no such scorecard (run python -m analysis scorecard)")
    return tuple(json.loads(path.read_text())["questions"])


def _questions(folder: str) -> str:
    qs = [q for q in _card_questions(folder) if q.get("role", "declared") == "declared"]
    out = ["| question | declared theory | strongest baseline | runs | theory | baseline | "
           "difference [16-84 %] | wins / runs |", "|---|---|---|---|---|---|---|---|"]
    for q in qs:
        if not q.get("n_runs"):
            out.append(f"| {q['question']} | `{q['theory']}` | - | 0 | - | - | - (too few runs) | - |")
            continue
        wins = f"{q['wins']} / {q['n_runs']}" if "wins" in q else "-"
        out.append(f"| {q['question']} | `{q['theory']}` | `{q['baseline']}` | {q['n_runs']} | "
                   f"{_value(q['theory_value'])} | {_value(q['baseline_value'])} | "
                   f"{_diff(q)} | {wins} |")
    return "\n".join(out) + "\n"


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _diff(q: dict) -> str:
    """``difference [lo, hi]`` of a paired comparison (``-`` where it could not be formed)."""
    if q.get("difference") is None:
        return "-"
    iv = q.get("interval")
    return _signed(q["difference"]) + ("" if iv is None else f" [{_signed(iv[0])}, {_signed(iv[1])}]")


def _challengers(folder: str) -> str:
    qs = [q for q in _card_questions(folder) if q.get("role") == "challenger"]
    out = ["| question | challenger (declared on) | strongest baseline | runs | challenger | baseline | "
           "difference [16-84 %] | against the theory it challenges [16-84 %] |",
           "|---|---|---|---|---|---|---|---|"]
    for q in qs:
        if not q.get("n_runs"):
            out.append(f"| {q['question']} | `{q['theory']}` ({q['declared_on']}) | - | 0 | - | - | "
                       "- (too few runs) | - |")
            continue
        v = q["versus_declared"]
        vs = (_diff(v) + (f", {v['wins']} / {v['n_runs']} won" if "wins" in v else "")
              if v.get("n_runs") else "-")
        out.append(f"| {q['question']} | `{q['theory']}` ({q['declared_on']}) | `{q['baseline']}` | "
                   f"{q['n_runs']} | {_value(q['theory_value'])} | {_value(q['baseline_value'])} | "
                   f"{_diff(q)} | {vs} |")
    return "\n".join(out) + "\n"


def _runs_csv(folder: str) -> dict[str, dict[str, str]]:
    path = ROOT / folder / "runs.csv"
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep runs (run python -m realnet.sweeps.tables)")
    with open(path, newline="") as fh:
        return {r["run"]: r for r in csv.DictReader(fh)}


def _numerics(fast: str, plain: str) -> str:
    """The numerics tool's verdict (:func:`realnet.tools.numerics.agreement`) on the run folders
    two sweeps share: per setting and metric, the difference of means (``fast - plain``) against
    the pooled seed standard deviation; the paths agree when it is at most 2."""
    from realnet.tools.numerics import TOLERANCE_SD, agreement

    a, b = _runs_csv(fast), _runs_csv(plain)
    cells = sorted({r.rsplit("/", 1)[0] for r in a} & {r.rsplit("/", 1)[0] for r in b})
    out = ["| setting | metric | bf16 - fp32 (mean over seeds) | pooled seed sd | ratio | verdict |",
           "|---|---|---|---|---|---|"]
    for cell in cells:
        seeds = sorted(r.rsplit("/", 1)[1] for r in a if r.rsplit("/", 1)[0] == cell and r in b)
        for metric in ("linear_top1", "knn_top1", "effective_rank"):
            g = agreement([_num(a[f"{cell}/{s}"][metric]) for s in seeds],
                          [_num(b[f"{cell}/{s}"][metric]) for s in seeds])
            out.append(f"| {cell} ({len(seeds)} seeds) | {metric} | {g['diff']:+.2f} | {g['pooled_sd']:.2f} | "
                       f"{g['ratio']:.2f} | {'same' if g['same'] else 'DIFFERENT'} (<= {TOLERANCE_SD:g}) |")
    return "\n".join(out) + "\n"


KINDS: dict[str, Callable[..., str]] = {"sweep": _sweep, "questions": _questions,
                                        "challengers": _challengers, "numerics": _numerics}


def render(text: str) -> str:
    """``text`` with every generated block rewritten from its files."""
    _card_questions.cache_clear()  # the files may have changed since the last render

    def block(m: re.Match) -> str:
        kind, *args = m.group("spec").split()
        if kind not in KINDS:
            raise ConfigError(f"RESULTS.md: unknown generated block {kind!r}; allowed {sorted(KINDS)}")
        return m.group(1) + KINDS[kind](*args) + m.group(4)

    return BLOCK.sub(block, text)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m figures.results", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare only; exit 1 if RESULTS.md is stale")
    args = p.parse_args(argv)
    try:
        text = RESULTS.read_text()
        new = render(text)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        if new != text:
            print("RESULTS.md is stale: run python -m figures.results", file=sys.stderr)
            return 1
        return 0
    if new != text:
        RESULTS.write_text(new)
    print(f"RESULTS.md: {len(BLOCK.findall(new))} generated tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
