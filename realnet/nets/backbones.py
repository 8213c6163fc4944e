"""Trunks beyond realnet's own ResNet-18/34: any torchvision classification model by name, and any
``nn.Module`` handed to the Python API.

``model.arch`` names either one of realnet's own trunks (:data:`realnet.nets.resnet.ARCHS`:
``resnet18``, ``resnet34``, with a width multiplier and the ``small`` stem; at width 1 they have
torchvision's parameter names and shapes) or any model of ``torchvision.models.list_models()``
(``resnet50``, ``resnext50_32x4d``, ``wide_resnet50_2``, ``convnext_tiny``, ``vit_b_16`` ...),
built by torchvision with random weights and its classifier replaced by an identity, so that it
maps images to pooled features:

- ResNet-family models (a ``conv1`` / ``maxpool`` / ``layer4`` / ``fc`` layout) take the stems
  of :data:`realnet.nets.resnet.STEMS` (:func:`adapt_resnet_stem`): ``cifar`` makes ``conv1`` a 3x3
  stride-1 convolution and drops the max-pool, ``small`` also runs ``layer4`` at stride 1, and
  ``conv1`` takes the dataset's channels.
- Other models keep torchvision's stem (``model.stem=imagenet`` only); a grey dataset is
  repeated to the 3 channels they expect (:class:`RepeatChannels`, no parameters).
- The classifier is the model's last ``nn.Linear`` (``fc``, ``classifier[-1]``, ``heads.head``,
  ``head``); the features are its inputs (:func:`strip_classifier`).

:func:`backbone_factory` gives the trainer a zero-argument callable that builds a fresh trunk
``(module, feat_dim)``: from the config, or a deep copy of an API-supplied module in its initial
state (the random-init probe baseline then sees exactly the weights training started from).
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from realnet.nets.resnet import ARCHS, STEMS, build_backbone
from analysis.errors import ConfigError

__all__ = ["BackboneFactory", "torchvision_archs", "all_archs", "is_resnet_family",
           "adapt_resnet_stem", "strip_classifier", "RepeatChannels", "torchvision_backbone",
           "module_feat_dim", "backbone_factory", "CUSTOM_ARCH"]

#: ``model.arch`` of a run whose trunk came from the Python API (``train(..., backbone=module)``).
CUSTOM_ARCH = "custom"

BackboneFactory = Callable[[], "tuple[nn.Module, int]"]


def torchvision_archs() -> list[str]:
    """Names of torchvision's classification models (``torchvision.models.list_models``)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def all_archs() -> list[str]:
    """Every allowed ``model.arch``: realnet's own, torchvision's, and ``custom`` (API only)."""
    return sorted(set(ARCHS) | set(torchvision_archs()) | {CUSTOM_ARCH})


def is_resnet_family(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("conv1", "maxpool", "layer4", "fc")) \
        and isinstance(model.conv1, nn.Conv2d)


def adapt_resnet_stem(model: nn.Module, stem: str, in_channels: int) -> nn.Module:
    """Give a torchvision ResNet-family ``model`` realnet's ``stem`` (in place; see the module
    docstring) and ``in_channels`` input channels; returns ``model``."""
    spec = STEMS[stem]
    out_ch = model.conv1.out_channels
    if spec.kernel != model.conv1.kernel_size[0] or spec.stride != model.conv1.stride[0] \
            or in_channels != model.conv1.in_channels:
        model.conv1 = nn.Conv2d(in_channels, out_ch, spec.kernel, spec.stride, spec.kernel // 2,
                                bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if not spec.maxpool:
        model.maxpool = nn.Identity()
    if spec.stage_strides[3] == 1:  # the first block of layer4 down-samples in a strided conv
        block = model.layer4[0]
        for m in block.modules():
            if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                m.stride = (1, 1)
    return model


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def strip_classifier(model: nn.Module) -> int:
    """Replace the last ``nn.Linear`` of ``model`` by an identity (in place); returns its
    ``in_features`` (the feature dimension). ValueError when the model has no Linear layer."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = (name, m)
    if last is None:
        raise ConfigError(f"{type(model).__name__}: no nn.Linear classifier to remove")
    _set_submodule(model, last[0], nn.Identity())
    return int(last[1].in_features)


class RepeatChannels(nn.Module):
    """``(B, c, H, W) -> (B, 3, H, W)`` by repeating a grey channel (no parameters)."""

    def __init__(self, body: nn.Module, channels: int = 3) -> None:
        super().__init__()
        self.body, self.channels = body, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x
        return self.body(x)


def torchvision_backbone(name: str, *, stem: str = "imagenet", in_channels: int = 3,
                         width: float = 1.0) -> tuple[nn.Module, int]:
    """``torchvision.models.<name>`` (random weights) as a trunk ``(module, feat_dim)``; see the
    module docstring. ValueError naming ``model.*`` for a stem or width it cannot take."""
    import torchvision

    if name not in torchvision_archs():
        raise ConfigError(f"model.arch={name!r} is invalid: allowed {all_archs()}")
    if width != 1:
        raise ConfigError(f"model.width={width!r} is invalid for model.arch={name}: allowed 1 "
                         f"(only realnet's own {sorted(ARCHS)} take a width multiplier)")
    model = torchvision.models.get_model(name, weights=None)
    if is_resnet_family(model):
        adapt_resnet_stem(model, stem, in_channels)
    elif stem != "imagenet":
        raise ConfigError(f"model.stem={stem!r} is invalid for model.arch={name}: allowed imagenet "
                         "(the cifar and small stems exist for ResNet-family models)")
    feat = strip_classifier(model)
    if not is_resnet_family(model) and in_channels != 3:
        if in_channels != 1:
            raise ConfigError(f"model.arch={name} takes 3 input channels; the data has {in_channels}")
        model = RepeatChannels(model)
    return model, feat


@torch.no_grad()
def module_feat_dim(module: nn.Module, channels: int, size: int) -> int:
    """The feature dimension of ``module`` on ``(2, channels, size, size)`` inputs (an eval-mode
    forward on a copy, so no BatchNorm statistics change); ValueError unless it returns (B, d)."""
    probe = copy.deepcopy(module).cpu().eval()
    y = probe(torch.zeros(2, channels, size, size))
    if not isinstance(y, torch.Tensor) or y.ndim != 2 or y.shape[0] != 2:
        raise ConfigError(f"backbone: must map (B, C, H, W) images to (B, d) features; "
                         f"{type(module).__name__} returned {getattr(y, 'shape', type(y).__name__)}")
    return int(y.shape[1])


def backbone_factory(model_cfg, channels: int, size: int,
                     module: nn.Module | None = None) -> BackboneFactory:
    """A zero-argument callable returning a fresh trunk ``(module, feat_dim)``: a deep copy of the
    API's ``module`` as it is now (``model.arch`` must then be ``custom``), else the trunk that
    ``model_cfg`` names (realnet's own or torchvision's)."""
    m = model_cfg
    if module is not None:
        if m.arch != CUSTOM_ARCH:
            raise ConfigError(f"model.arch={m.arch!r} is invalid with a backbone module: allowed "
                             f"{CUSTOM_ARCH!r} (train() sets it when backbone= is given)")
        initial = copy.deepcopy(module).cpu()
        feat = module_feat_dim(initial, channels, size)
        return lambda: (copy.deepcopy(initial), feat)
    if m.arch == CUSTOM_ARCH:
        raise ConfigError("model.arch='custom' is invalid here: allowed only with the Python API's "
                         "backbone= module (realnet.training.trainer.train(cfg, out, backbone=module))")
    if m.arch in ARCHS:
        return lambda: build_backbone(arch=m.arch, stem=m.stem, width=m.width, in_channels=channels)
    return lambda: torchvision_backbone(m.arch, stem=m.stem, in_channels=channels, width=m.width)
