"""Regenerate every theory figure (paper Figs. 3, 4, 5, 7, 8, 9, 10 and the collapse phase
diagram) in one process.

Run: ``python -m figures.theory [--out DIR] [--fresh] [--tiny] [--only NAME ...]``.
``--fresh`` deletes each figure's output folder before writing it (what ``make figures`` does).
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import time
from pathlib import Path

from ._common import DEFAULT_OUT, doc_summary

#: Module names under ``figures``, in paper order.
THEORY_FIGURES = (
    "fig3_phase_portraits",
    "fig4_phase_lines",
    "fig5_eta_beta",
    "fig7_wa_w_correlation",
    "fig8_sym_antisym",
    "fig9_commutator",
    "fig10_scalar_flows",
    "fig_collapse_phase_diagram",
)


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(prog="python -m figures.theory", description=doc_summary(__doc__))
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output root (default {DEFAULT_OUT})")
    p.add_argument("--fresh", action="store_true", help="delete each figure's folder first")
    p.add_argument("--tiny", action="store_true", help="small, fast versions (smoke test)")
    p.add_argument("--only", nargs="+", choices=THEORY_FIGURES, metavar="NAME",
                   help=f"a subset of: {', '.join(THEORY_FIGURES)}")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    written = []
    for name in args.only or THEORY_FIGURES:
        folder = Path(args.out) / name
        if args.fresh and folder.exists():
            shutil.rmtree(folder)
        module = importlib.import_module(f"figures.{name}")
        written.append(module.main(["--out", args.out] + (["--tiny"] if args.tiny else [])))
    print(f"{len(written)} figures in {time.perf_counter() - t0:.1f} s under {args.out}")
    return written


if __name__ == "__main__":
    main()
