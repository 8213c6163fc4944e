"""Export a run's trained trunk (``python -m realnet export RUN_DIR [--out FILE]``).

Writes the online network's backbone from the run's last checkpoint as a plain ``state_dict`` (CPU
tensors only, loadable with ``torch.load(..., weights_only=True)``) and, beside it, a JSON file
with what a user needs to rebuild the module: ``arch``, ``stem``, ``width``, ``in_channels``,
``feat_dim``, the step and the run folder.

The trunk uses torchvision's parameter names, so the file loads into the torchvision model of
``arch`` (realnet's own resnet18/34 at ``width = 1``, or any torchvision model the run trained)
after the same stem changes the run used (:func:`realnet.nets.backbones.adapt_resnet_stem`: for the
``cifar`` and ``small`` stems ``conv1`` becomes a 3x3 stride-1 convolution with ``in_channels``
inputs and ``maxpool`` an ``nn.Identity``; ``small`` also runs ``layer4`` at stride 1, which
changes no weight shape) and with the classifier replaced by an identity
(:func:`realnet.nets.backbones.strip_classifier`); :func:`torchvision_trunk` does exactly that and
loads the file strictly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from analysis.runs import (CHECKPOINT, CONFIG, RUN_INFO, atomic_file, read_json, refuse_inside_run,
                           write_json_atomic)

from realnet.training.checkpoint import load_checkpoint, model_weights
from realnet.config.train_config import read_run_config
from analysis.errors import ConfigError

__all__ = ["export_trunk", "torchvision_trunk", "BACKBONE_PREFIX"]

#: Where the online trunk sits in a checkpoint's model state dict.
BACKBONE_PREFIX = "online.backbone."


#: The export's own files inside a run folder; any other path there is refused.
EXPORT_FILES = ("trunk.pt", "trunk.json")


def export_trunk(run_dir: str | Path, out: str | Path | None = None, *,
                 force: bool = False) -> dict[str, Any]:
    """Write ``out`` (default ``RUN_DIR/trunk.pt``) and ``out`` with ``.json``; returns the
    metadata. ConfigError naming the file when the run has no config or checkpoint, when ``out``
    lies inside a run folder other than as :data:`EXPORT_FILES`, or when ``out`` (or its
    ``.json``) exists and ``force`` is false."""
    run_dir = Path(run_dir)
    target = run_dir / "trunk.pt" if out is None else Path(out)
    for path in (target, target.with_suffix(".json")):
        refuse_inside_run(path, EXPORT_FILES)
        if path.exists() and not force:
            raise ConfigError(f"--out {str(path)!r} exists; pass --force to replace it")
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{str(run_dir)!r}: no config.json; not a run folder")
    if not (run_dir / CHECKPOINT).is_file():
        raise ConfigError(f"{str(run_dir)!r}: no checkpoint ({CHECKPOINT}); nothing to export yet")
    cfg = read_run_config(run_dir / CONFIG)
    state = load_checkpoint(run_dir / CHECKPOINT)
    weights = model_weights(state, run_dir / CHECKPOINT)
    trunk = {k[len(BACKBONE_PREFIX):]: v.detach().cpu().clone()
             for k, v in weights.items() if k.startswith(BACKBONE_PREFIX)}
    if not trunk:
        raise ConfigError(f"{str(run_dir / CHECKPOINT)!r}: holds no {BACKBONE_PREFIX}* weights")
    out = target
    with atomic_file(out) as tmp:
        torch.save(trunk, tmp)
    info = read_json(run_dir / RUN_INFO)
    channels = info.get("channels") if isinstance(info, dict) else None
    if channels is None:  # run folders written before run.json named the channels
        channels = int(trunk["conv1.weight"].shape[1]) if "conv1.weight" in trunk else None
    proj = weights.get("online.projector.net.0.weight")
    meta = {"arch": cfg.model.arch, "stem": cfg.model.stem, "width": cfg.model.width,
            "in_channels": channels,
            "feat_dim": int(proj.shape[1]) if proj is not None else None,
            "step": int(state["step"]), "complete": bool(state.get("complete", False)),
            "run": str(run_dir), "file": str(out)}
    write_json_atomic(out.with_suffix(".json"), meta)
    return meta


def torchvision_trunk(meta: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """The torchvision model ``meta["arch"]`` with the run's stem (:mod:`realnet.nets.backbones`), its
    classifier an identity (so it returns pooled features) and ``state`` loaded strictly. realnet's
    own resnet18/34 load into torchvision's at width 1 only; a ``custom`` trunk has no torchvision
    model (rebuild your own module and load the state dict into it)."""
    from realnet.nets.backbones import CUSTOM_ARCH, torchvision_backbone

    if meta["arch"] == CUSTOM_ARCH:
        raise ConfigError("arch='custom': the trunk came from the Python API; load the state dict "
                         "into your own module")
    if meta["width"] != 1:
        raise ConfigError(f"width={meta['width']!r}: torchvision's {meta['arch']} has width 1 only; "
                         "build the trunk with realnet.nets.resnet.build_backbone instead")
    model, _ = torchvision_backbone(meta["arch"], stem=meta["stem"], in_channels=meta["in_channels"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"trunk does not match torchvision's {meta['arch']}: {e}") from None
    return model
