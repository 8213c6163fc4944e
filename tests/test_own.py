"""Own data and trunks through the Python API: a torch Dataset (resident and streamed), any
torchvision model by name, any nn.Module; each run equals the reference path where it should."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from realnet.nets.backbones import adapt_resnet_stem, strip_classifier, torchvision_backbone
from realnet.config.train_config import load_config
from realnet.data.datasets import DATASETS, load_images
from realnet.data.torchdata import TorchData, read_dataset, to_uint8_chw
from realnet.training.trainer import train

FAST = ["train.steps=6", "log.every=3", "log.spectra_every=3", "log.checkpoint_every=3",
        "log.probe_size=64", "eval.probe_epochs=2", "eval.knn_k=5", "data.ssl_limit=256",
        "data.train_limit=200", "data.test_limit=100", "train.batch_size=32",
        "eval.pixel_baseline=false", "augment.crop_scale=[0.5, 1.0]", "augment.flip_p=0.0"]


class Digits(torch.utils.data.Dataset):
    """scikit-learn's digits as a map-style Dataset of (PIL image | array | tensor, label)."""

    def __init__(self, split: str, kind: str = "tensor") -> None:
        self.x, self.y = load_images("digits", None, split)
        self.kind = kind

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.kind == "pil":
            x = Image.fromarray(x[0].numpy())
        elif self.kind == "float":
            x = x.float() / 255
        return x, int(self.y[i])


def _digits_data(kind: str = "tensor") -> TorchData:
    spec = DATASETS["digits"]
    return TorchData(ssl=Digits("ssl", kind), train=Digits("train", kind), test=Digits("test", kind),
                     mean=spec.mean, std=spec.std, num_classes=10)


def _final_state(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def _same_states(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0), k


def test_item_conversion_resizes_and_accepts_every_image_kind():
    arr = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10)
    t = to_uint8_chw(arr)
    assert t.shape == (1, 6, 10) and t.dtype == torch.uint8
    assert torch.equal(to_uint8_chw(Image.fromarray(arr)), t)
    assert torch.equal(to_uint8_chw(torch.from_numpy(arr)[None].float() / 255), t)
    r = to_uint8_chw(arr, size=4)  # shorter side 6 -> 4, centre crop of the long side
    assert r.shape == (1, 4, 4)
    with pytest.raises(ValueError, match="uint8 or float"):
        to_uint8_chw(torch.zeros(3, 4, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="PIL image, a numpy array or a tensor"):
        to_uint8_chw("img.png")


def test_read_dataset_needs_labels_for_labelled_splits():
    class Unlabelled(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(1, 8, 8, dtype=torch.uint8)
    x, y = read_dataset(Unlabelled(), 8, labelled=False)
    assert x.shape == (3, 1, 8, 8) and y.tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match=r"\(image, label\) pairs"):
        read_dataset(Unlabelled(), 8, labelled=True)


def test_torch_dataset_resident_and_streamed_equal_the_config_dataset(tmp_path):
    """The same digits through the config (resident), the config streamed from host memory, a
    torch Dataset (resident) and a torch Dataset streamed by 2 loader processes: the same
    batches, so the same weights bit for bit and the same probe."""
    cfg = load_config("digits", FAST)
    ref = train(cfg, tmp_path / "ref", quiet=True)
    host = train(load_config("digits", FAST + ["data.stream=true"]), tmp_path / "host", quiet=True)
    own = train(cfg, tmp_path / "own", quiet=True, data=_digits_data("pil"))
    streamed = train(load_config("digits", FAST + ["data.stream=true", "data.workers=2"]),
                     tmp_path / "stream", quiet=True, data=_digits_data("float"))
    for name, res in (("host", host), ("own", own), ("stream", streamed)):
        _same_states(_final_state(tmp_path / "ref"), _final_state(tmp_path / name))
        assert res["linear_top1"] == ref["linear_top1"], name
    saved = json.loads((tmp_path / "stream" / "config.json").read_text())
    assert saved["data"]["dataset"] == "torch"
    info = json.loads((tmp_path / "stream" / "run.json").read_text())
    assert info["pool"] == "DatasetPool" and info["n_ssl"] == 256


def test_streamed_torch_dataset_resumes_exactly(tmp_path):
    over = FAST + ["data.stream=true", "data.workers=0"]
    full = train(load_config("digits", over), tmp_path / "full", quiet=True, data=_digits_data())
    assert train(load_config("digits", over), tmp_path / "cut", quiet=True, data=_digits_data(),
                 stop_after=4) is None
    resumed = train(load_config("digits", over), tmp_path / "cut", quiet=True, data=_digits_data())
    _same_states(_final_state(tmp_path / "full"), _final_state(tmp_path / "cut"))
    assert resumed["linear_top1"] == full["linear_top1"]


def test_torch_dataset_needs_the_api(tmp_path):
    with pytest.raises(ValueError, match="data.dataset=torch is invalid here"):
        train(load_config("digits", FAST + ["data.dataset=torch"]), tmp_path / "x", quiet=True)
    assert not (tmp_path / "x" / "config.json").exists()


def test_torchvision_resnet50_by_name_with_the_cifar_stem():
    m, feat = torchvision_backbone("resnet50", stem="cifar", in_channels=1)
    assert feat == 2048 and m.conv1.kernel_size == (3, 3) and m.conv1.in_channels == 1
    assert isinstance(m.maxpool, nn.Identity) and isinstance(m.fc, nn.Identity)
    with torch.no_grad():
        assert m.eval()(torch.zeros(2, 1, 16, 16)).shape == (2, 2048)
    small, _ = torchvision_backbone("resnet50", stem="small", in_channels=3)
    with torch.no_grad():  # small stem: layer4 keeps the map (16 px -> 4 x 4 before pooling)
        assert small.eval().layer4(small.layer3(small.layer2(small.layer1(
            small.conv1(torch.zeros(1, 3, 16, 16)))))).shape[-1] == 4
    with pytest.raises(ValueError, match=r"model.width=0.5 is invalid for model.arch=resnet50"):
        torchvision_backbone("resnet50", width=0.5)
    with pytest.raises(ValueError, match=r"model.stem='cifar' is invalid for model.arch=mobilenet_v3_small"):
        torchvision_backbone("mobilenet_v3_small", stem="cifar")
    with pytest.raises(ValueError, match=r"model.arch='resnet5' is invalid: allowed"):
        torchvision_backbone("resnet5")


def test_own_resnet18_is_torchvisions_after_the_stem_change():
    """realnet's resnet18 at width 1 and torchvision's with adapt_resnet_stem have one state-dict
    layout (names and shapes), for every stem."""
    import torchvision

    from realnet.nets.resnet import build_backbone

    for stem in ("imagenet", "cifar", "small"):
        ours, _ = build_backbone(arch="resnet18", stem=stem, in_channels=1)
        tv = adapt_resnet_stem(torchvision.models.resnet18(), stem, 1)
        strip_classifier(tv)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: v.shape for k, v in tv.state_dict().items()}


def test_config_trains_a_torchvision_model_and_a_custom_module(tmp_path):
    over = FAST + ["train.steps=2", "log.every=1", "log.spectra_every=2", "log.checkpoint_every=2",
                   "eval.random_init_baseline=true"]
    res = train(load_config("digits", over + ["model.arch=mobilenet_v3_small", "model.stem=imagenet", "model.width=1",
                                                  "data.image_size=32"]), tmp_path / "tv", quiet=True)
    assert res == json.loads((tmp_path / "tv" / "summary.json").read_text()) and res["steps"] == 2
    with pytest.raises(ValueError, match="model.width=0.125 is invalid: allowed 1 for model.arch=resnet50"):
        load_config("digits", over + ["model.arch=resnet50"])

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(5)
    module = Tiny()
    initial = {k: v.clone() for k, v in module.state_dict().items()}
    res = train(load_config("digits", over), tmp_path / "own", quiet=True, backbone=module)
    assert json.loads((tmp_path / "own" / "config.json").read_text())["model"]["arch"] == "custom"
    for k, v in module.state_dict().items():  # the caller's module is left as it was
        assert torch.equal(v, initial[k]), k
    trained = _final_state(tmp_path / "own")
    assert trained["online.backbone.body.0.weight"].shape == (8, 1, 3, 3)
    assert not torch.equal(trained["online.backbone.body.0.weight"], initial["body.0.weight"])
    assert res == json.loads((tmp_path / "own" / "summary.json").read_text()) and res["steps"] == 2
    with pytest.raises(ValueError, match="model.arch='custom' is invalid here"):  # resume without it
        train(load_config("digits", over + ["model.arch=custom"]), tmp_path / "own", quiet=True)
    with pytest.raises(ValueError, match=r"must map \(B, C, H, W\) images to \(B, d\)"):
        train(load_config("digits", over), tmp_path / "bad", quiet=True, backbone=nn.Identity())


def test_imagefolder_with_torchvision_resnet50_from_python_then_export(tmp_path):
    """The issue's user story: an image folder, torchvision's ResNet-50 with the CIFAR stem, from
    Python; the exported trunk loads with weights_only=True into torchvision's resnet50 and gives
    the run's own features."""
    from test_imagefolder import make_tree

    from realnet.eval.export import export_trunk, torchvision_trunk
    from realnet.nets.ssl_model import build_ssl_model

    root = make_tree(tmp_path / "data", n=8)
    cfg = load_config(None, ["data.dataset=imagefolder", f"data.root={root}", "data.image_size=16",
                             "model.arch=resnet50", "model.stem=cifar", "model.proj_hidden_dim=64",
                             "model.proj_dim=16", "train.steps=2", "train.batch_size=8",
                             "log.spectra_every=0", "log.probe_size=8", "eval.probe_epochs=2",
                             "eval.knn_k=3", "eval.pixel_baseline=false",
                             "eval.random_init_baseline=false", "device=cpu"])
    res = train(cfg, tmp_path / "run", quiet=True)
    assert res == json.loads((tmp_path / "run" / "summary.json").read_text()) and res["steps"] == 2
    meta = export_trunk(tmp_path / "run")
    assert meta["arch"] == "resnet50" and meta["feat_dim"] == 2048 and meta["in_channels"] == 3
    state = torch.load(tmp_path / "run" / "trunk.pt", weights_only=True)
    tv = torchvision_trunk(meta, state).eval()
    model = build_ssl_model(cfg, dataclasses.replace(DATASETS["imagefolder"], image_size=16, num_classes=2))
    model.load_state_dict(torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"])
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(tv(x), model.online.backbone.eval()(x), rtol=1e-5, atol=1e-5)



def test_tensorboard_logs_metrics_spectra_and_summary_and_a_resume_purges(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    over = FAST + ["log.tensorboard=true", "log.every=1"]
    assert train(load_config("digits", over), tmp_path, quiet=True, stop_after=4) is None
    # steps 4.. of a killed invocation would be logged again after the resume from step 3
    summary = train(load_config("digits", over), tmp_path, quiet=True)
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    loss_steps = [e.step for e in acc.Scalars("train/loss")]
    assert loss_steps == [1, 2, 3, 4, 5, 6]
    metrics = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    by_step = {m["step"]: m["loss"] for m in metrics if "loss" in m}
    assert [round(e.value, 5) for e in acc.Scalars("train/loss")] == \
        [round(by_step[s], 5) for s in loss_steps]
    assert [e.step for e in acc.Histograms("spectra/log10_F_eigvals")] == [0, 3, 6]
    assert acc.Scalars("final/linear_top1")[0].value == pytest.approx(summary["linear_top1"])
    # one name per quantity: the probe pairs' rank is a curve of its own (each snapshot step once),
    # the test set's is the final one, equal to summary.json's
    assert [e.step for e in acc.Scalars("train/probe_effective_rank")] == [3, 6]
    assert "train/effective_rank" not in acc.Tags()["scalars"]
    assert acc.Scalars("final/effective_rank")[0].value == pytest.approx(summary["effective_rank"])
    final = [m for m in metrics if m.get("final")]
    assert len(final) == 1 and final[0]["effective_rank"] == pytest.approx(summary["effective_rank"])
    assert all("effective_rank" not in m for m in metrics if not m.get("final"))


def test_tensorboard_without_the_package_is_refused_before_any_work(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ValueError, match=r"log.tensorboard=true is invalid here: .*pip install"):
        train(load_config("digits", FAST + ["log.tensorboard=true"]), tmp_path / "r", quiet=True)
    assert not (tmp_path / "r" / "config.json").exists()
