"""The README's first command (``python -m figures.mission``) at a smoke length: every part runs
and every file it promises is written."""
from __future__ import annotations

import json
from pathlib import Path

from figures.mission import RUNS, main


def test_mission_writes_theory_runs_comparison_and_scorecard(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--steps", "48", "--quiet"]) == 0
    res = json.loads((tmp_path / "mission.json").read_text())
    assert set(res["runs"]) == set(RUNS)
    assert len(res["figures"]) == 2 + len(RUNS)
    for f in res["figures"]:
        assert Path(f).is_relative_to(tmp_path) and Path(f).stat().st_size > 5_000
    assert all(json.loads((tmp_path / "runs" / n / "summary.json").read_text())["steps"] == 48 for n in RUNS)
    md = (tmp_path / "mission.md").read_text()
    assert "random-init" in md and "Forward scorecard" in md and "persistence" in md
    assert "linear probe" in capsys.readouterr().out
