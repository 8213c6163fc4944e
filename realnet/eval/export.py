"""Export a run's trained trunk (``python -m realnet export RUN_DIR [--out FILE]``).

Writes the online network's backbone from the run's last checkpoint as a plain ``state_dict`` (CPU
tensors only, loadable with ``torch.load(..., weights_only=True)``) and, beside it, a JSON file
with what a user needs to rebuild the module and feed it: ``arch``, ``stem``, ``width``,
``in_channels``, ``feat_dim``, the step, the run folder and ``input`` (the image size, the
channels and the per-channel ``mean`` / ``std`` applied to images on the [0, 1] scale).

:func:`load_trunk` rebuilds the module from the two files at any width: realnet's own ResNet
(:func:`realnet.nets.resnet.build_backbone`) for realnet's archs, the torchvision model otherwise.
The trunk uses torchvision's parameter names, so at ``width = 1`` the file also loads into the
torchvision model of ``arch`` after the same stem changes the run used
(:func:`realnet.nets.backbones.adapt_resnet_stem`: for the ``cifar`` and ``small`` stems ``conv1``
becomes a 3x3 stride-1 convolution with ``in_channels`` inputs and ``maxpool`` an
``nn.Identity``; ``small`` also runs ``layer4`` at stride 1, which changes no weight shape, so a
plain torchvision ResNet-18 with only conv1 and maxpool swapped loads strictly yet computes other
features) and with the classifier replaced by an identity
(:func:`realnet.nets.backbones.strip_classifier`); :func:`torchvision_trunk` does exactly that and
loads the file strictly. Below width 1 torchvision has no such model: use :func:`load_trunk`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analysis.runs import (CONFIG, RUN_INFO, read_json, refuse_inside_run,
                           write_json_atomic)

from realnet.training.checkpoint import load_checkpoint_at, model_weights, save_checkpoint
from realnet.config.train_config import read_run_config
from analysis.errors import ConfigError

__all__ = ["export_trunk", "load_trunk", "torchvision_trunk", "BACKBONE_PREFIX"]

#: Where the online trunk sits in a checkpoint's model state dict.
BACKBONE_PREFIX = "online.backbone."


#: The export's own files inside a run folder; any other path there is refused.
EXPORT_FILES = ("trunk.pt", "trunk.json")


def export_trunk(run_dir: str | Path, out: str | Path | None = None, *,
                 force: bool = False, step: int | None = None) -> dict[str, Any]:
    """Write ``out`` (default ``RUN_DIR/trunk.pt``) and ``out`` with ``.json`` from the last
    checkpoint, or the kept one of ``step``; returns the metadata. ConfigError naming the file when the run has no config or checkpoint, when ``out``
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
    path, state = load_checkpoint_at(run_dir, step)
    cfg = read_run_config(run_dir / CONFIG)
    weights = model_weights(state, path)
    trunk = {k[len(BACKBONE_PREFIX):]: v.detach().cpu().clone()
             for k, v in weights.items() if k.startswith(BACKBONE_PREFIX)}
    if not trunk:
        raise ConfigError(f"{str(path)!r}: holds no {BACKBONE_PREFIX}* weights")
    out = save_checkpoint(target, trunk)  # serialised in memory first: a full disk is an OSError
    info = read_json(run_dir / RUN_INFO)
    info = info if isinstance(info, dict) else {}
    channels = info.get("channels")
    if channels is None:  # run folders written before run.json named the channels
        channels = int(trunk["conv1.weight"].shape[1]) if "conv1.weight" in trunk else None
    proj = weights.get("online.projector.net.0.weight")
    meta = {"arch": cfg.model.arch, "stem": cfg.model.stem, "width": cfg.model.width,
            "in_channels": channels,
            "feat_dim": int(proj.shape[1]) if proj is not None else None,
            "input": info.get("input") or _input_of(cfg),
            "step": int(state["step"]), "complete": bool(state.get("complete", False)),
            "run": str(run_dir), "file": str(out)}
    write_json_atomic(out.with_suffix(".json"), meta)
    return meta


def _input_of(cfg: Any) -> dict[str, Any] | None:
    """The input facts of a run folder written before ``run.json`` recorded them: the shipped
    dataset's (an image folder at its ``data.image_size``); None for a torch Dataset."""
    from realnet.data.datasets import DATASETS, input_facts

    spec = DATASETS.get(cfg.data.dataset)
    if spec is None or spec.channels == 0:
        return None
    if cfg.data.dataset == "imagefolder":
        spec = dataclasses.replace(spec, image_size=cfg.data.image_size)
    return input_facts(spec)


def load_trunk(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(module, meta)`` from an export (``path`` is the ``.pt``; its ``.json`` lies beside it):
    the module in eval mode with the weights loaded strictly, mapping ``(B, in_channels, H, W)``
    images, normalised as ``meta["input"]`` says, to ``(B, feat_dim)`` features. Any width:
    realnet's own ResNet for ``resnet18`` / ``resnet34``, the torchvision model for a torchvision
    arch. ConfigError naming the file if either is missing or they do not match."""
    from realnet.nets.resnet import ARCHS, build_backbone

    path = Path(path)
    meta = read_json(path.with_suffix(".json"))
    if not isinstance(meta, dict) or not {"arch", "stem", "width", "in_channels"} <= set(meta):
        raise ConfigError(f"{str(path.with_suffix('.json'))!r}: missing or not an export's "
                         "metadata (python -m realnet export writes it beside the .pt)")
    if not path.is_file():
        raise ConfigError(f"{str(path)!r}: no such export")
    state = torch.load(path, weights_only=True, map_location="cpu")
    if meta["arch"] not in ARCHS:
        return torchvision_trunk(meta, state).eval(), meta
    model, _ = build_backbone(arch=meta["arch"], stem=meta["stem"], width=meta["width"],
                              in_channels=meta["in_channels"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{str(path)!r} does not match its metadata: {e}") from None
    return model.eval(), meta


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
                         "load the export with realnet.eval.export.load_trunk instead")
    model, _ = torchvision_backbone(meta["arch"], stem=meta["stem"], in_channels=meta["in_channels"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"trunk does not match torchvision's {meta['arch']}: {e}") from None
    return model
