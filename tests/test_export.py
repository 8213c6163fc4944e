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
