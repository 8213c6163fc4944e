"""Export a run's trained trunk (``python -m realnet export RUN_DIR [--out FILE]``).

Writes the online network's backbone from the run's last checkpoint as a plain ``state_dict`` (CPU
tensors only, loadable with ``torch.load(..., weights_only=True)``) and, beside it, a JSON file
with what a user needs to rebuild the module: ``arch``, ``stem``, ``width``, ``in_channels``,
``feat_dim``, the step and the run folder.

The trunk uses torchvision's parameter names (:mod:`realnet.models`), so at ``width = 1`` the file
loads into ``torchvision.models.resnet18`` (or 34) after the same stem changes the run used: for the
``cifar`` and ``small`` stems, ``conv1`` becomes a 3x3 stride-1 convolution with ``in_channels``
inputs and ``maxpool`` an ``nn.Identity`` (the ``small`` stem also runs ``layer4`` at stride 1,
which changes no weight shape); the exported dict has no ``fc``, so load with ``strict=False`` and
check that only ``fc.*`` is missing. :func:`torchvision_trunk` does exactly that.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analysis.runs import CHECKPOINT, CONFIG, atomic_file, write_json_atomic

from .checkpoint import load_checkpoint
from .config import config_from_dict

__all__ = ["export_trunk", "torchvision_trunk", "BACKBONE_PREFIX"]

#: Where the online trunk sits in a checkpoint's model state dict.
BACKBONE_PREFIX = "online.backbone."


def export_trunk(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write ``out`` (default ``RUN_DIR/trunk.pt``) and ``out`` with ``.json``; returns the
    metadata. ValueError naming the file when the run has no config or checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ValueError(f"{str(run_dir)!r}: no config.json; not a run folder")
    if not (run_dir / CHECKPOINT).is_file():
        raise ValueError(f"{str(run_dir)!r}: no checkpoint ({CHECKPOINT}); nothing to export yet")
    cfg = config_from_dict(json.loads((run_dir / CONFIG).read_text()))
    state = load_checkpoint(run_dir / CHECKPOINT)
    trunk = {k[len(BACKBONE_PREFIX):]: v.detach().cpu().clone()
             for k, v in state["model"].items() if k.startswith(BACKBONE_PREFIX)}
    if not trunk:
        raise ValueError(f"{str(run_dir / CHECKPOINT)!r}: holds no {BACKBONE_PREFIX}* weights")
    out = run_dir / "trunk.pt" if out is None else Path(out)
    with atomic_file(out) as tmp:
        torch.save(trunk, tmp)
    meta = {"arch": cfg.model.arch, "stem": cfg.model.stem, "width": cfg.model.width,
            "in_channels": int(trunk["conv1.weight"].shape[1]),
            "feat_dim": int(trunk["layer4.1.bn2.weight"].shape[0]) if "layer4.1.bn2.weight" in trunk else None,
            "step": int(state["step"]), "complete": bool(state.get("complete", False)),
            "run": str(run_dir), "file": str(out)}
    write_json_atomic(out.with_suffix(".json"), meta)
    return meta


def torchvision_trunk(meta: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """A ``torchvision.models.<arch>`` with the stem of ``meta`` and ``state`` loaded (``fc``
    replaced by an identity, so it returns pooled features). Only width 1 has torchvision's
    shapes."""
    import torchvision

    if meta["width"] != 1:
        raise ValueError(f"width={meta['width']!r}: torchvision's {meta['arch']} has width 1 only; "
                         "build the trunk with realnet.models.build_backbone instead")
    model = getattr(torchvision.models, meta["arch"])(weights=None)
    if meta["stem"] in ("cifar", "small"):
        model.conv1 = nn.Conv2d(meta["in_channels"], 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    if meta["stem"] == "small":
        stage = model.layer4[0]
        stage.conv1.stride = (1, 1)
        stage.downsample[0].stride = (1, 1)
    elif meta["in_channels"] != 3:
        model.conv1 = nn.Conv2d(meta["in_channels"], 64, 7, 2, 3, bias=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("fc.") for k in missing):
        raise ValueError(f"trunk does not match torchvision's {meta['arch']}: missing "
                         f"{[k for k in missing if not k.startswith('fc.')]}, unexpected {unexpected}")
    model.fc = nn.Identity()
    return model
