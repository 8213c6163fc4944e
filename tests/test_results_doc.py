"""RESULTS.md's tables are the committed files' numbers: every generated block equals what
``python -m figures.results`` renders from them, and a changed number in a file shows."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from figures import results

ROOT = Path(__file__).resolve().parents[1]


def test_results_md_is_current():
    assert results.main(["--check"]) == 0, "RESULTS.md is stale: run python -m figures.results"
    assert len(results.BLOCK.findall(results.RESULTS.read_text())) >= 3


def test_a_changed_committed_number_makes_the_document_stale(tmp_path, monkeypatch):
    """Copy one sweep's results.csv, change one cell's mean, render: the table shows the new value."""
    src = ROOT / "figures" / "out" / "sweeps" / "cpu" / "results.csv"
    folder = tmp_path / "sweep"
    folder.mkdir()
    shutil.copy(src, folder / "results.csv")
    rows = list(csv.DictReader(open(folder / "results.csv", newline="")))
    rows[0]["linear_top1_mean"] = "12.345"
    with open(folder / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    monkeypatch.setattr(results, "ROOT", tmp_path)
    text = "<!-- generated: sweep sweep predictors -->\nold\n<!-- end generated -->\n"
    out = results.render(text)
    assert "| 12.35 ± " in out and "old" not in out
    with pytest.raises(ValueError, match="no table"):
        results.render(text.replace("predictors", "nosuch"))
