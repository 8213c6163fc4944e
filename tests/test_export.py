"""``python -m realnet export``: the trunk loads with ``weights_only=True`` into torchvision's
ResNet-18 (with the run's stem) and computes the same features as the run's own trunk."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from realnet.config.train_config import config_from_dict
from realnet.data.datasets import dataset_spec
from realnet.eval.export import torchvision_trunk
from realnet.nets.ssl_model import build_ssl_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stem", ["small", "imagenet"])
def test_exported_trunk_equals_the_runs_trunk_in_torchvision(tmp_path, stem):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "realnet", "train", "--config", "digits", "--out", str(out),
                        "--quiet", "train.steps=2", "model.width=1.0", f"model.stem={stem}",
                        # the imagenet stem down-samples 32x: 64 px crops end as a 2x2 map
                        f"data.image_size={64 if stem == 'imagenet' else 8}", "log.probe_size=64",
                        "data.train_limit=128", "data.test_limit=128", "log.spectra_every=0",
                        "eval.linear_probe=false", "eval.random_init_baseline=false", "eval.pixel_baseline=false"],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "realnet", "export", str(out)], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "trunk.json").read_text())
    state = torch.load(out / "trunk.pt", weights_only=True)
    assert meta["in_channels"] == 1 and meta["step"] == 2
    tv = torchvision_trunk(meta, state).eval()
    cfg = config_from_dict(json.loads((out / "config.json").read_text()))
    model = build_ssl_model(cfg, dataset_spec(cfg.data.dataset))
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    model.load_state_dict(ckpt["model"])
    own = model.online.backbone.eval()
    x = torch.randn(4, 1, 16, 16) if stem == "small" else torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tv(x), own(x), rtol=1e-5, atol=1e-5)
    # and a trained weight differs from a fresh init (the export is the run's, not a new model)
    fresh = build_ssl_model(cfg, dataset_spec(cfg.data.dataset)).online.backbone
    assert not torch.equal(fresh.conv1.weight, state["conv1.weight"])


def test_export_refuses_a_folder_without_a_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "realnet", "export", str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 2 and "no checkpoint" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def cpu_width_run(tmp_path_factory):
    """A shipped digits run at its CPU width (0.125), two steps."""
    out = tmp_path_factory.mktemp("export") / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "realnet", "train", "--config", "digits", "--out", str(out),
                        "--quiet", "train.steps=2", "log.spectra_every=0", "eval.linear_probe=false",
                        "eval.random_init_baseline=false", "eval.pixel_baseline=false"],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    return out


def test_an_export_at_a_cpu_width_loads_and_gives_the_runs_features(cpu_width_run, tmp_path):
    """torchvision has no width-0.125 ResNet-18; load_trunk rebuilds realnet's own from trunk.json
    and gives the run's features; trunk.json says how to feed it (size, channels, mean/std)."""
    from realnet.data.datasets import DATASETS
    from realnet.eval.export import export_trunk, load_trunk

    meta = export_trunk(cpu_width_run, tmp_path / "t.pt")
    assert meta["width"] == 0.125
    spec = DATASETS["digits"]
    assert meta["input"]["image_size"] == spec.image_size and meta["input"]["channels"] == 1
    assert meta["input"]["mean"] == list(spec.mean) and meta["input"]["std"] == list(spec.std)
    module, loaded = load_trunk(tmp_path / "t.pt")
    assert loaded == json.loads((tmp_path / "t.json").read_text())
    cfg = config_from_dict(json.loads((cpu_width_run / "config.json").read_text()))
    model = build_ssl_model(cfg, dataset_spec(cfg.data.dataset))
    model.load_state_dict(torch.load(cpu_width_run / "checkpoints" / "last.pt", weights_only=True)["model"])
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(module(x), model.online.backbone.eval()(x), rtol=1e-5, atol=1e-5)
    assert module(x).shape == (4, meta["feat_dim"])


def test_export_on_a_full_disk_is_one_line_naming_the_file(cpu_width_run, tmp_path, monkeypatch, capsys):
    """ENOSPC while writing the export: exit 2, one line naming the file, no temporary left."""
    import errno

    from realnet.__main__ import main

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    target = tmp_path / "out" / "t.pt"
    assert main(["export", str(cpu_width_run), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and "No space left" in err[0], err
    assert list((tmp_path / "out").iterdir()) == []
