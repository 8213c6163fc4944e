"""Networks of the real-training recipe (THEORY.md section 4): the ResNet trunk and the MLP heads.

- :class:`MLP` is the two-layer head ``Linear -> BatchNorm1d(affine=False) -> ReLU -> Linear``
  used for the projector (512 -> 512 -> 128) and for the two-layer predictor (128 -> 512 -> 128).
- :func:`build_backbone` builds a ResNet trunk from torchvision's ``BasicBlock`` with a choice of
  stem, a width multiplier and any number of input channels, without the classifier: it maps
  ``(B, C, H, W)`` to pooled features ``(B, feat_dim)``.

Stems (registry :data:`STEMS`):

``"imagenet"``
    7x7 stride-2 conv + 3x3 stride-2 max-pool (the standard ResNet stem; STL-10 at 96x96).
    Total down-sampling 32. With ``width=1`` and 3 input channels the trunk has exactly the
    parameters of ``torchvision.models.resnet18`` without ``fc`` (11,176,512), under the same
    parameter names, so torchvision state dicts (minus ``fc``) load into it.
``"cifar"``
    3x3 stride-1 conv, no max-pool (the CIFAR variant of the paper and of SimSiam/BYOL CIFAR
    code). Total down-sampling 8: a 32x32 image ends as a 4x4 map before pooling.
``"small"``
    For 8-28 px inputs (digits, Fashion-MNIST, down-scaled CPU runs): the cifar stem *and* the last
    stage kept at stride 1, so the total down-sampling is 4. A 16x16 input then ends as the same
    4x4 map that a 32x32 CIFAR image gives with the cifar stem (28 px -> 7x7, 8 px digits -> 2x2
    instead of a degenerate 1x1). Cost: the last stage runs on a 4x larger map, about 1.75x the
    FLOPs of the cifar stem at equal input size; on 16 px inputs that is still ~0.44x the FLOPs of
    a 32 px CIFAR image. Parameter count equals the cifar stem's.

Width multiplier: stage channels are ``c, 2c, 4c, 8c`` with ``c = max(1, round(64 * width))``, so
``feat_dim = 8c`` (512 for ``width=1``).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1
from analysis.errors import ConfigError

__all__ = [
    "MLP",
    "StemSpec",
    "STEMS",
    "ARCHS",
    "ResNetTrunk",
    "build_backbone",
    "build_projector",
    "count_parameters",
]


class MLP(nn.Module):
    """Two-layer head ``Linear -> BatchNorm1d(affine=False) -> ReLU -> Linear`` (THEORY.md section 4).

    Used as the projector (512 -> 512 -> 128) and as the two-layer predictor (128 -> 512 -> 128).
    The hidden BatchNorm has no affine parameters, as in the paper's recipe.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        for name, v in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            _check_pos_int(name, v)
        self.in_dim, self.hidden_dim, self.out_dim = int(in_dim), int(hidden_dim), int(out_dim)
        self.net = nn.Sequential(
            nn.Linear(self.in_dim, self.hidden_dim),
            nn.BatchNorm1d(self.hidden_dim, affine=False),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden_dim, self.out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class StemSpec:
    """How the trunk starts and how each stage down-samples."""

    kernel: int  # first conv kernel size
    stride: int  # first conv stride
    maxpool: bool  # 3x3 stride-2 max-pool after the first conv
    stage_strides: tuple[int, int, int, int]  # strides of layer1..layer4

    @property
    def downsampling(self) -> int:
        """Total spatial down-sampling factor from input to the last feature map."""
        f = self.stride * (2 if self.maxpool else 1)
        for s in self.stage_strides:
            f *= s
        return f


#: Stem registry (see the module docstring for the reasons behind each).
STEMS: dict[str, StemSpec] = {
    "imagenet": StemSpec(kernel=7, stride=2, maxpool=True, stage_strides=(1, 2, 2, 2)),
    "cifar": StemSpec(kernel=3, stride=1, maxpool=False, stage_strides=(1, 2, 2, 2)),
    "small": StemSpec(kernel=3, stride=1, maxpool=False, stage_strides=(1, 2, 2, 1)),
}

#: Architecture registry: number of BasicBlocks per stage.
ARCHS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}


class ResNetTrunk(nn.Module):
    """ResNet trunk (BasicBlock stages, global average pool, no classifier).

    Attribute names follow ``torchvision.models.ResNet`` (``conv1``, ``bn1``, ``layer1`` ...) so
    that torchvision weights load with ``strict=True`` after dropping ``fc``.
    """

    def __init__(self, blocks: tuple[int, ...], stem: StemSpec, base_channels: int, in_channels: int) -> None:
        super().__init__()
        c = base_channels
        self.conv1 = nn.Conv2d(in_channels, c, kernel_size=stem.kernel, stride=stem.stride,
                               padding=stem.kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem.maxpool else nn.Identity()
        inplanes = c
        stages = []
        for i, (n, stride) in enumerate(zip(blocks, stem.stage_strides)):
            planes = c * 2**i
            stages.append(_make_stage(inplanes, planes, n, stride))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feat_dim = inplanes
        self._init_weights()

    def _init_weights(self) -> None:
        # Same initialisation as torchvision's ResNet.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _make_stage(inplanes: int, planes: int, n_blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    layers = [BasicBlock(inplanes, planes, stride, downsample)]
    layers += [BasicBlock(planes, planes) for _ in range(1, n_blocks)]
    return nn.Sequential(*layers)


def build_backbone(*, arch: str = "resnet18", stem: str = "cifar", width: float = 1.0,
                   in_channels: int = 3) -> tuple[nn.Module, int]:
    """ResNet trunk without classifier: returns ``(module, feat_dim)``; the module maps
    ``(B, in_channels, H, W)`` to ``(B, feat_dim)`` (THEORY.md section 4: ResNet-18, 512-d).

    Raises ``ValueError`` naming ``model.arch`` / ``model.stem`` / ``model.width`` /
    ``model.in_channels`` for bad values.
    """
    if arch not in ARCHS:
        raise ConfigError(f"model.arch: unknown architecture {arch!r}; allowed: {sorted(ARCHS)}")
    if stem not in STEMS:
        raise ConfigError(f"model.stem: unknown stem {stem!r}; allowed: {sorted(STEMS)}")
    try:
        w = float(width)
    except (TypeError, ValueError):
        raise ConfigError(f"model.width: must be a number > 0, got {width!r}") from None
    if not (w > 0 and w < float("inf")):
        raise ConfigError(f"model.width: must be a finite number > 0, got {width!r}")
    _check_pos_int("model.in_channels", in_channels)
    base = max(1, int(round(64 * w)))
    trunk = ResNetTrunk(ARCHS[arch], STEMS[stem], base, int(in_channels))
    return trunk, trunk.feat_dim


def build_projector(in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> MLP:
    """Projector ``in_dim -> hidden_dim (BN without affine, ReLU) -> out_dim`` (THEORY.md section 4)."""
    return MLP(in_dim, hidden_dim, out_dim)


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _check_pos_int(name: str, v) -> None:
    try:
        ok = not isinstance(v, bool) and operator.index(v) >= 1
    except TypeError:
        ok = False
    if not ok:
        raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")
