"""Shared plumbing of the figure scripts: command line, style, and writing the figure with the
numbers it plots.

Every figure module defines ``NAME``, a frozen ``Config`` dataclass (paper settings as defaults,
``Config.tiny()`` for smoke tests), ``compute(cfg) -> FigureData`` and ``plot(data, cfg) ->
Figure``; the plot reads only ``data``, and ``data`` is what gets written, so the files hold
exactly the plotted numbers. ``main(argv)`` is :func:`run_figure` applied to the module.

Output layout: ``<out>/<NAME>/<NAME>.png``, ``<NAME>.pdf``, one ``<table>.csv`` per table and
``summary.json`` (configuration and the numbers quoted in figures/README.md).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from analysis.jsonio import json_ready as to_json
from analysis.textio import Table, doc_summary, read_table, write_table  # noqa: F401 (re-exported)

__all__ = ["FigureData", "Table", "STYLE", "DEFAULT_OUT", "run_figure", "write_table",
           "read_table", "rows", "save_figure", "to_json", "random_reduced_state", "param_colors", "label_panel"]

#: Root of the outputs when ``--out`` is not given (each figure writes a sub-folder).
DEFAULT_OUT = "figures/out"

#: Matplotlib settings shared by every figure (small serif-free print style, like the paper's).
STYLE: dict[str, Any] = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "lines.linewidth": 1.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "mathtext.fontset": "cm",
    "savefig.bbox": "tight",
    "savefig.dpi": 160,
    "pdf.fonttype": 42,
}


@dataclass
class FigureData:
    """What a figure plots: named ``tables`` (CSV) and ``summary`` (JSON-ready numbers)."""

    tables: dict[str, Table]
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, table in self.tables.items():
            lengths = {k: len(np.asarray(v)) for k, v in table.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"table {name!r}: columns of unequal length {lengths}")


def rows(table: Table, **equal: Any) -> Table:
    """The rows of ``table`` whose columns equal the given values (floats compared exactly:
    the values come from the same table)."""
    mask = np.ones(len(next(iter(table.values()))), dtype=bool)
    for k, v in equal.items():
        mask &= np.asarray(table[k]) == v
    return {k: np.asarray(c)[mask] for k, c in table.items()}





def random_reduced_state(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A random start of the reduced dynamics: ``(F0, Wp0) = (W0 W0^T, Wp0)`` with ``W0``, ``Wp0``
    i.i.d. ``N(0, 1/n)`` from ``default_rng([seed, 1])``."""
    rng = np.random.default_rng([seed, 1])
    W0 = rng.standard_normal((n, n)) / np.sqrt(n)
    return W0 @ W0.T, rng.standard_normal((n, n)) / np.sqrt(n)


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """Write ``fig`` as PNG and PDF into ``out_dir``."""
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p)
    return paths


def param_colors(n: int, cmap: str = "viridis", lo: float = 0.05, hi: float = 0.85) -> list:
    """``n`` colours spread over a sequential colormap (light end avoided)."""
    import matplotlib

    cm = matplotlib.colormaps[cmap]
    return [cm(x) for x in (np.linspace(lo, hi, n) if n > 1 else [lo])]


def label_panel(ax, letter: str) -> None:
    """Bold panel letter in the top-left corner, outside the axes."""
    ax.text(-0.02, 1.06, f"({letter})", transform=ax.transAxes, fontweight="bold",
            ha="right", va="bottom")


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m figures.{name}", description=description)
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"output root; files go to OUT/{name}/ (default {DEFAULT_OUT})")
    p.add_argument("--tiny", action="store_true",
                   help="small grids and short runs (smoke tests); numbers are not the paper's")
    return p


def sweep_figure_parser(name: str, doc: str, default_sweep: str) -> argparse.ArgumentParser:
    """The command line of a figure drawn from a sweep folder: ``[SWEEP] [--out DIR]``."""
    p = argparse.ArgumentParser(prog=f"python -m figures.{name}", description=doc_summary(doc))
    p.add_argument("sweep", nargs="?", default=default_sweep, help=f"sweep folder (default {default_sweep})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output root; files go to OUT/{name}/")
    return p


def render_figure(name: str, out_root: str | Path, draw: Callable[[], Any]) -> tuple[Path, list[Path]]:
    """Draw the figure that ``draw()`` returns with the gallery style (Agg backend) and save it to
    ``out_root/name/`` (PNG and PDF); returns the folder and the files written."""
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # font-subsetting chatter in PDFs
    import matplotlib.pyplot as plt

    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        fig = draw()
        written = save_figure(fig, out, name)
    plt.close(fig)
    return out, written


def run_figure(name: str, description: str, config_cls: type, compute: Callable[[Any], FigureData],
               plot: Callable[[FigureData, Any], Any], argv: list[str] | None = None) -> Path:
    """Parse ``argv`` (``--out``, ``--tiny``), compute, plot and write everything; return the
    output folder."""
    args = _parser(name, description).parse_args(argv)
    cfg = config_cls.tiny() if args.tiny else config_cls()
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # font-subsetting chatter in PDFs
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    data = compute(cfg)
    with plt.rc_context(STYLE):
        fig = plot(data, cfg)
        out_dir = Path(args.out) / name
        out_dir.mkdir(parents=True, exist_ok=True)
        written = save_figure(fig, out_dir, name)
    plt.close(fig)
    for tname, table in data.tables.items():
        written.append(write_table(out_dir / f"{tname}.csv", table))
    summary = {"figure": name, "config": asdict(cfg), "tiny": bool(args.tiny),
               "seconds": round(time.perf_counter() - t0, 3), **data.summary}
    (out_dir / "summary.json").write_text(json.dumps(to_json(summary), indent=2) + "\n")
    written.append(out_dir / "summary.json")
    print(f"{name}: wrote {len(written)} files to {out_dir} in {summary['seconds']:.1f} s")
    return out_dir
