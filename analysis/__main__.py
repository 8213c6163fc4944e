"""``python -m analysis compare|report``: predicted against measured for real runs.

``python -m analysis compare RUN_DIR [--out DIR]``
    Theory's per-mode prediction for the run against its last spectra snapshot, collapse
    diagnostics; writes report.json, modes.csv, predicted_vs_measured.png and
    spectra_over_time.png (default DIR: RUN_DIR/analysis) and prints the verdict.
``python -m analysis report RUN_DIR... [--out DIR]``
    A table across runs, grouped by config minus seed (mean +- std); prints it as markdown and
    writes report.csv / report.md when --out is given.
``python -m analysis scorecard RUN_DIR... --out DIR [--cutoff 0.15]``
    Forward predictions from the cutoff by every theory and baseline, scored on what each run did
    after it (:mod:`analysis.scorecard`); writes scorecard.json/.csv/.md/.png and prints the
    markdown.

Exit status: 0 done, 2 bad arguments or a folder that is not a run.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from .collapse import MODE_DROP, RANK_DROP
from .hparams import CONVENTIONS
from .metrics import COLLAPSE_REL_TOL

__all__ = ["main", "COMMANDS"]


def _compare(args: argparse.Namespace) -> None:
    from .compare import write_compare

    report = write_compare(args.run_dir, args.out, convention=args.convention, tol=args.tol,
                           rank_drop=args.rank_drop)
    short = {k: report[k] for k in ("run", "predictor", "theory", "summary", "verdict")}
    short["collapse"] = {k: report["collapse"][k] for k in ("onset_step", "onset_reason",
                                                           "first_modes", "total_collapse")}
    short["files"] = report["files"]
    print(json.dumps(short, indent=2))


def _report(args: argparse.Namespace) -> None:
    from .report import report_runs

    _, md = report_runs(args.run_dirs, args.out, convention=args.convention)
    print(md)


def _scorecard(args: argparse.Namespace) -> None:
    from .scorecard import markdown, write_scorecard

    card = write_scorecard(args.run_dirs, args.out, cutoff=args.cutoff, tol=args.tol,
                           convention=args.convention)
    print(markdown(card))


def _open_fraction(text: str) -> float:
    """A number in (0, 1) (argparse type): refuses nan, inf and the ends."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: allowed a number in (0, 1)")
    return v


def _add_scorecard(sub) -> None:
    p = sub.add_parser("scorecard", help="forward predictions from a cutoff against baselines")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", required=True, help="write scorecard.json/.csv/.md/.png here")
    p.add_argument("--cutoff", type=_open_fraction, default=0.15,
                   help="cutoff as a fraction of the run (default 0.15)")
    p.add_argument("--tol", type=_open_fraction, default=COLLAPSE_REL_TOL,
                   help=f"collapse rule: s_j <= tol * s_max (default {COLLAPSE_REL_TOL:g})")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default="continuous")
    p.set_defaults(func=_scorecard)


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="predicted vs measured for one run")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis)")
    p.add_argument("--tol", type=_open_fraction, default=COLLAPSE_REL_TOL,
                   help=f"collapse rule: s_j <= tol * s_max (default {COLLAPSE_REL_TOL:g})")
    p.add_argument("--rank-drop", type=float, default=RANK_DROP,
                   help=f"collapse onset: effective rank below this x its running max "
                        f"(default {RANK_DROP:g}; modes: {MODE_DROP:g} of them)")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default="continuous",
                   help="hyperparameter mapping (default continuous: momentum and symmetrised loss "
                        "counted)")
    p.set_defaults(func=_compare)


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="table across runs (mean +- std over seeds)")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", default=None, help="write report.csv and report.md here")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default="continuous")
    p.set_defaults(func=_report)


#: Subcommand registrars.
def _compact(args: argparse.Namespace) -> None:
    from .runs import write_compact_snapshots

    for run_dir in args.run_dirs:
        out = write_compact_snapshots(run_dir)
        print(f"{out}: {out.stat().st_size / 1e3:.0f} kB")


def _add_compact(sub) -> None:
    p = sub.add_parser("compact", help="write each run's spectra snapshots into one small file "
                                       "(snapshots.npz) that analysis reads when spectra/ is absent")
    p.add_argument("run_dirs", nargs="+")
    p.set_defaults(func=_compact, out=None)


COMMANDS: tuple[Callable[[Any], None], ...] = (_add_compare, _add_report, _add_scorecard, _add_compact)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis",
                                     description="Predicted against measured for real runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    from .errors import ConfigError, io_problem
    from .jsonio import ensure_writable

    try:
        out = getattr(args, "out", None)
        if out is None and getattr(args, "run_dir", None):
            out = f"{args.run_dir}/analysis"
        if out is not None:
            ensure_writable(out)
        args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk or a permission: one line; any other OSError is a bug
        line = io_problem(err)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
