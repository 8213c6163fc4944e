"""The run folder's one owner (analysis.runs): status, atomic writes, the JSON-lines log."""
import json

import pytest

from analysis.runs import (CHECKPOINT, SUMMARY, SWEEP_STATUS, JsonlLog, atomic_file, run_status,
                           write_json_atomic)


def test_run_status_of_each_kind_of_folder(tmp_path):
    assert run_status(tmp_path / "none") == "missing"
    f = tmp_path / "r"
    f.mkdir()
    (f / SWEEP_STATUS).write_text(json.dumps({"status": "failed"}))
    assert run_status(f) == "failed"
    (f / CHECKPOINT).parent.mkdir()
    (f / CHECKPOINT).write_bytes(b"x")
    assert run_status(f) == "partial"
    (f / SWEEP_STATUS).write_text(json.dumps({"status": "nonfinite"}))
    assert run_status(f) == "nonfinite"
    (f / SUMMARY).write_text("{torn")          # a corrupt summary is not a finished run
    assert run_status(f) == "nonfinite"
    write_json_atomic(f / SUMMARY, {"linear_top1": 80.0, "steps": 10})
    assert run_status(f) == "done"


def test_atomic_file_leaves_the_target_untouched_on_failure(tmp_path):
    target = tmp_path / "a.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary left
    with atomic_file(target) as t1, atomic_file(target) as t2:
        assert t1 != t2  # two writers never share a temporary name
        t1.write_text("1")
        t2.write_text("2")
    assert target.read_text() in ("1", "2")


def test_jsonl_log_truncates_after_a_checkpoint_and_skips_torn_lines(tmp_path):
    log = JsonlLog(tmp_path / "m.jsonl")
    for k in (10, 20, 30):
        log.write({"step": k})
    log.write({"step": 30, "final": True})
    with open(log.path, "a") as fh:
        fh.write('{"step": 4')                 # torn by a kill
    log.truncate_after(20)
    assert log.read() == [{"step": 10}, {"step": 20}]
