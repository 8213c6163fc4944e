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
    md = (tmp_path / "mission.md").read_text()
    for name in RUNS:  # every number the mission reports is its run's own
        summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
        assert summary["steps"] == 48
        for k, v in res["runs"][name].items():
            assert v == summary[k], (name, k)
        gain = summary["linear_top1"] - summary["linear_top1_random_init"]
        assert f"| {name} | {summary['linear_top1']:.1f} | {summary['linear_top1_random_init']:.1f} | {gain:+.1f} |" in md
    card = json.loads((tmp_path / "scorecard" / "scorecard.json").read_text())
    assert {r["run"] for r in card["rows"]} == {str(tmp_path / "runs" / n) for n in RUNS}
    assert "Forward scorecard" in md and "Pre-declared questions" in md
    printed = capsys.readouterr().out
    assert printed.startswith("Does the theory predict what the real runs do next?")  # the answer first
    assert "linear probe" in printed and md.split("```")[1].strip() == printed.split("\ndirectpred:")[0].strip()
