"""Text a command writes or shows: a table of columns as CSV (:func:`write_table`,
:func:`read_table`) and a module docstring's first paragraph as a ``--help`` description
(:func:`doc_summary`). The figure scripts and the sweep runner share them."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Table", "write_table", "read_table", "doc_summary"]

#: A table: equal-length 1-D columns, written as one CSV file (long format).
Table = dict[str, np.ndarray]


def write_table(path: Path, table: Table) -> Path:
    """Write a table as CSV (floats with 10 significant digits, NaN as ``nan``)."""
    cols = list(table)
    arrays = [np.asarray(table[c]) for c in cols]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(len(arrays[0]) if arrays else 0):
            w.writerow([_cell(a[i]) for a in arrays])
    return path


def _cell(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.10g}"
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    return str(x)


def read_table(path: str | Path) -> Table:
    """Read a CSV written by :func:`write_table` (numeric columns as float arrays)."""
    with open(path, newline="") as fh:
        r = list(csv.reader(fh))
    header, body = r[0], r[1:]
    out: Table = {}
    for j, name in enumerate(header):
        col = [row[j] for row in body]
        try:
            out[name] = np.array([float(v) for v in col])
        except ValueError:
            out[name] = np.array(col)
    return out


def doc_summary(doc: str) -> str:
    """The first paragraph of a module docstring on one line, without RST's double backquotes (a
    command's ``--help`` description: the whole sentence, not its first line)."""
    return " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "")
