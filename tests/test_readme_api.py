"""The README's Python API block runs as written (in a temporary working folder)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_block_runs(tmp_path, monkeypatch, capsys):
    section = README.read_text().split("## Python API", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), env)
    assert (tmp_path / "runs" / "api_digits" / "analysis" / "report.json").is_file()
    # the comment's claim: the first mode collapses, the second survives (at p*_+ = 0.657)
    traj = env["traj"]
    assert traj.s[-1][0] < 1e-12 and traj.s[-1][1] > 0.1
    on_disk = json.loads((tmp_path / "runs" / "api_digits" / "summary.json").read_text())
    assert env["summary"] == on_disk  # train() returns what it wrote
    assert on_disk["linear_top1_random_init"] == pytest.approx(80.0, abs=0.5)  # the README's 80 %


def test_readme_own_data_block_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## Python API", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(blocks[1], "README.md", "exec"), env)
    import json

    cfg = json.loads((tmp_path / "runs" / "api_own" / "config.json").read_text())
    assert cfg["data"]["dataset"] == "torch" and cfg["model"]["arch"] == "custom"
    on_disk = json.loads((tmp_path / "runs" / "api_own" / "summary.json").read_text())
    assert env["own"] == on_disk and on_disk["steps"] == 60
