"""Committed results rebuild from committed files: the scorecard of the DirectPred tables
(``make scorecards``) recomputes, run by run, from each run's ``snapshots.npz`` in a fresh clone."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from analysis.scorecard import scorecard

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "figures" / "out" / "scorecard" / "directpred_tables" / "scorecard.json"
#: per-run scores that depend on that run alone (top_k reads the other runs: left out)
KEYS = ("fate_bacc", "fate_acc", "path_dex", "spectrum_dex", "spearman", "n_alive_pred", "pr_pred",
        "rankme_pred", "n_alive_meas", "cutoff_step", "n_alive_cutoff")


@pytest.mark.skipif(not CARD.is_file(), reason="no committed scorecard")
def test_the_committed_scorecard_rebuilds_from_the_committed_snapshots(monkeypatch):
    committed = json.loads(CARD.read_text())
    runs = sorted({r["run"] for r in committed["rows"]})[:2]  # two runs: a minute on 2 cores
    assert runs and all((ROOT / r / "snapshots.npz").is_file() for r in runs)
    monkeypatch.chdir(ROOT)
    rebuilt = scorecard(runs, cutoff=committed["cutoff"], tol=committed["tol"])
    want = {(r["run"], r["forecaster"]): r for r in committed["rows"]
            if r["run"] in runs and r["forecaster"] != "top_k"}
    got = {(r["run"], r["forecaster"]): r for r in rebuilt["rows"] if r["forecaster"] != "top_k"}
    assert set(got) == set(want)
    for key, row in want.items():
        for k in KEYS:
            a, b = row.get(k), got[key].get(k)
            if a is None or (isinstance(a, float) and math.isnan(a)):
                assert b is None or (isinstance(b, float) and math.isnan(b)), (key, k)
            else:
                assert b == pytest.approx(a, rel=1e-9, abs=1e-12), (key, k)
