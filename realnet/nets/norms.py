"""Normalisation choices of the trunk and the heads: is BYOL's batch norm an implicit negative,
or only a good initialisation? (Richemond et al. 2020, "BYOL works even without batch
statistics", answer with GroupNorm plus weight standardisation.)

- ``model.head_norm`` (projector and two-layer predictor): ``batchnorm`` (the recipe's
  ``BatchNorm1d`` without affine), ``none`` (no normalisation in the heads: the classic "BYOL
  without BN in projector and predictor" ablation), ``groupnorm`` (``GroupNorm`` without affine
  over groups of hidden units, per sample).
- ``model.trunk_norm``: ``batchnorm`` (the ResNet's own) or ``groupnorm_ws`` (every
  ``BatchNorm2d`` becomes a ``GroupNorm`` and every convolution a :class:`WSConv2d` with
  standardised weights, so no layer of the trunk uses batch statistics).

:func:`batch_statistics_modules` lists the modules of a network that use batch statistics (the
tests check that a ``groupnorm_ws`` trunk with ``groupnorm`` / ``none`` heads has none, and that
its outputs for one sample do not depend on the rest of the batch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from analysis.errors import ConfigError

__all__ = ["HEAD_NORMS", "TRUNK_NORMS", "WSConv2d", "groups_for", "convert_head_norm",
           "convert_trunk_norm", "batch_statistics_modules"]

HEAD_NORMS = ("batchnorm", "none", "groupnorm")
TRUNK_NORMS = ("batchnorm", "groupnorm_ws")


def groups_for(channels: int, max_groups: int = 16, min_per_group: int = 4) -> int:
    """GroupNorm groups for ``channels``: as many as possible up to ``max_groups`` with at least
    ``min_per_group`` channels each, dividing ``channels`` (8 -> 2, 64 -> 16, 512 -> 16)."""
    for g in range(min(max_groups, max(1, channels // min_per_group)), 0, -1):
        if channels % g == 0:
            return g
    return 1


class WSConv2d(nn.Conv2d):
    """Conv2d with weight standardisation (Qiao et al. 2019): each filter has zero mean and unit
    variance over its fan-in at every forward, ``(w - mean) / (std + 1e-5)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False).add(1e-10).sqrt()
        return F.conv2d(x, (w - mean) / (std + 1e-5), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


def _swap(module: nn.Module, make) -> nn.Module:
    new = make(module)
    if new is not None:
        return new
    for name, child in module.named_children():
        setattr(module, name, _swap(child, make))
    return module


def convert_head_norm(module: nn.Module, kind: str) -> nn.Module:
    """Replace every ``BatchNorm1d`` of a head by ``kind`` (module docstring); returns the module."""
    if kind not in HEAD_NORMS:
        raise ConfigError(f"model.head_norm={kind!r} is invalid: allowed {list(HEAD_NORMS)}")
    if kind == "batchnorm":
        return module

    def make(m: nn.Module):
        if isinstance(m, nn.BatchNorm1d):
            if kind == "none":
                return nn.Identity()
            return nn.GroupNorm(groups_for(m.num_features), m.num_features, affine=m.affine)
        return None
    return _swap(module, make)


def convert_trunk_norm(module: nn.Module, kind: str) -> nn.Module:
    """``groupnorm_ws``: every ``BatchNorm2d`` -> ``GroupNorm`` (affine as the BN) and every
    ``Conv2d`` -> :class:`WSConv2d` with the same weights; ``batchnorm``: unchanged."""
    if kind not in TRUNK_NORMS:
        raise ConfigError(f"model.trunk_norm={kind!r} is invalid: allowed {list(TRUNK_NORMS)}")
    if kind == "batchnorm":
        return module

    def make(m: nn.Module):
        if isinstance(m, nn.BatchNorm2d):
            gn = nn.GroupNorm(groups_for(m.num_features), m.num_features, affine=m.affine)
            if m.affine:
                with torch.no_grad():
                    gn.weight.copy_(m.weight)
                    gn.bias.copy_(m.bias)
            return gn
        if isinstance(m, nn.Conv2d) and not isinstance(m, WSConv2d):
            ws = WSConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                          m.dilation, m.groups, m.bias is not None, m.padding_mode)
            with torch.no_grad():
                ws.weight.copy_(m.weight)
                if m.bias is not None:
                    ws.bias.copy_(m.bias)
            return ws
        return None
    return _swap(module, make)


def batch_statistics_modules(module: nn.Module) -> list[str]:
    """Names of the modules of ``module`` that normalise by batch statistics."""
    return [name for name, m in module.named_modules() if isinstance(m, _BatchNorm)]
