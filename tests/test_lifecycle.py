"""A run's life after its first training: kept checkpoints (log.keep_checkpoints), eval and export
of a chosen step with evaluation overrides, and extending a finished run to more steps."""
from __future__ import annotations

import json

import pytest
import torch

from realnet.__main__ import main
from realnet.config.train_config import load_config
from realnet.training.trainer import train

FAST = ["log.spectra_every=2", "eval.linear_probe=false", "eval.random_init_baseline=false",
        "eval.pixel_baseline=false"]


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kept_checkpoints_are_the_steps_of_a_run_stopped_there(tmp_path):
    """Every N-th step's checkpoint is kept, and each equals the last.pt of the same run stopped
    at that step (so eval/export --step see the run as it was)."""
    train(load_config("digits", FAST + ["train.steps=6", "log.keep_checkpoints=2"]), tmp_path / "a",
          quiet=True)
    names = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert names == ["last.pt", "step_0000002.pt", "step_0000004.pt", "step_0000006.pt"]
    assert train(load_config("digits", FAST + ["train.steps=6"]), tmp_path / "b", quiet=True,
                 stop_after=4) is None
    assert _equal(_weights(tmp_path / "a" / "checkpoints" / "step_0000004.pt"),
                  _weights(tmp_path / "b" / "checkpoints" / "last.pt"))
    assert not _equal(_weights(tmp_path / "a" / "checkpoints" / "step_0000002.pt"),
                      _weights(tmp_path / "a" / "checkpoints" / "step_0000004.pt"))


def test_eval_and_export_at_a_kept_step_with_eval_overrides(tmp_path, capsys):
    run = tmp_path / "run"
    train(load_config("digits", FAST + ["train.steps=4", "log.keep_checkpoints=2"]), run, quiet=True)
    assert main(["eval", str(run), "--step", "2", "eval.knn_k=3"]) == 0
    res = json.loads((run / "eval_step_0000002.json").read_text())
    assert res["step"] == 2 and res["overrides"] == ["eval.knn_k=3"]
    assert res["checkpoint"] == "checkpoints/step_0000002.pt"
    assert main(["eval", str(run)]) == 0
    last = json.loads((run / "eval.json").read_text())
    assert last["step"] == 4 and last["knn_top1"] != res["knn_top1"]
    capsys.readouterr()
    # a step with no checkpoint lists the kept ones; a training key is refused
    assert main(["eval", str(run), "--step", "3"]) == 2
    assert "kept: 2, 4" in capsys.readouterr().err
    assert main(["eval", str(run), "optim.lr=1"]) == 2
    assert "eval.* keys only" in capsys.readouterr().err
    assert main(["export", str(run), "--step", "2", "--out", str(tmp_path / "t2.pt")]) == 0
    meta = json.loads((tmp_path / "t2.json").read_text())
    assert meta["step"] == 2 and not meta["complete"]
    trunk = torch.load(tmp_path / "t2.pt", weights_only=True)
    kept = _weights(run / "checkpoints" / "step_0000002.pt")
    assert all(torch.equal(v, kept[f"online.backbone.{k}"]) for k, v in trunk.items())


def test_extending_a_finished_run_equals_training_to_the_new_length(tmp_path, capsys):
    """train.steps raised on a finished run: it continues from its checkpoint, keeps the first
    summary, logs the new schedule end, and (constant schedules) ends bit-identical to a run
    trained to the new length from the start, with the same snapshots."""
    ext, ref = tmp_path / "ext", tmp_path / "ref"
    first = train(load_config("digits", FAST + ["train.steps=4"]), ext, quiet=True)
    assert main(["train", "--config", "digits", "--out", str(ext), "--quiet", "train.steps=8", *FAST]) == 0
    assert "extending the run" in capsys.readouterr().err
    train(load_config("digits", FAST + ["train.steps=8"]), ref, quiet=True)
    assert _equal(_weights(ext / "checkpoints" / "last.pt"), _weights(ref / "checkpoints" / "last.pt"))
    assert json.loads((ext / "summary_step_0000004.json").read_text())["knn_top1"] == first["knn_top1"]
    assert json.loads((ext / "summary.json").read_text())["steps"] == 8
    lines = [json.loads(x) for x in (ext / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 4, "schedule_end": {"from": 4, "to": 8}} in lines
    snaps = lambda run: [json.loads(x)["step"] for x in (run / "spectra.jsonl").read_text().splitlines()]
    assert snaps(ext) == snaps(ref) == [0, 2, 4, 6, 8]
    # shortening below the step reached is refused; another key is still a different run
    with pytest.raises(ValueError, match="never shortened"):
        train(load_config("digits", FAST + ["train.steps=6"]), ext, quiet=True)
    with pytest.raises(ValueError, match="different config"):
        train(load_config("digits", FAST + ["train.steps=8", "optim.lr=0.1"]), ext, quiet=True)


def test_the_online_probe_learns_without_touching_the_run_and_resumes_exactly(tmp_path):
    """eval.online_probe: the SSL weights are bit-identical to a run without it; its head learns
    (test top-1 far above the 10 % of chance on digits after 100 steps); stopped and resumed, its
    logged accuracies and final head equal an uninterrupted run's."""
    over = FAST + ["train.steps=100", "log.every=25", "log.spectra_every=0"]
    plain = tmp_path / "plain"
    train(load_config("digits", over), plain, quiet=True)
    probe = tmp_path / "probe"
    summary = train(load_config("digits", over + ["eval.online_probe=true"]), probe, quiet=True)
    assert _equal(_weights(plain / "checkpoints" / "last.pt"), _weights(probe / "checkpoints" / "last.pt"))
    assert summary["online_probe_test_top1"] > 50
    logged = [json.loads(x).get("online_probe_top1") for x in (probe / "metrics.jsonl").read_text().splitlines()]
    assert [v is not None for v in logged[:4]] == [True] * 4
    resumed = tmp_path / "resumed"
    assert train(load_config("digits", over + ["eval.online_probe=true"]), resumed, quiet=True,
                 stop_after=40) is None
    again = train(load_config("digits", over + ["eval.online_probe=true"]), resumed, quiet=True)
    assert again["online_probe_test_top1"] == summary["online_probe_test_top1"]
    by = lambda run: [json.loads(x).get("online_probe_top1") for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert by(resumed) == by(probe)
    a = torch.load(probe / "checkpoints" / "last.pt", weights_only=True)["online_probe"]["head"]
    b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)["online_probe"]["head"]
    assert _equal(a, b)
