"""The assembled SSL model (THEORY.md section 4).

An :class:`Encoder` is a trunk followed by a projector (image -> ``f``). :class:`SSLModel` holds
the online encoder, the predictor and, for BYOL, the EMA target encoder; for SimSiam the target is
the online encoder itself (``target`` is None); SwAV adds its prototypes. Which of them a method
has is the method's entry in :data:`realnet.methods.registry.METHODS`; the loss of one step is
its ``step_loss`` (:func:`realnet.methods.losses.ssl_loss` for BYOL / SimSiam).

In the theory's terms (Eqn 1): online ``W`` = encoder, ``Wp`` = predictor, ``Wa`` = target; the
loss is ``loss(Wp f1, sg(f2a))`` summed over both view orders.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from realnet.data.datasets import DatasetSpec
from realnet.nets.resnet import build_projector
from realnet.methods.ema import ema_update
from realnet.methods.predictors import Predictor, build_predictor
from realnet.methods.registry import METHODS

if TYPE_CHECKING:
    from realnet.nets.backbones import BackboneFactory

__all__ = ["Encoder", "SSLModel", "build_ssl_model"]


class Encoder(nn.Module):
    """Trunk + projector: ``forward(x) = projector(backbone(x))``."""

    def __init__(self, backbone: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


class SSLModel(nn.Module):
    """Online encoder + predictor, and the target encoder (BYOL) or none (SimSiam: the target
    branch is the online encoder). Target parameters never require gradients."""

    def __init__(self, online: Encoder, predictor: Predictor,
                 target: Encoder | None = None, prototypes: nn.Module | None = None) -> None:
        super().__init__()
        self.online = online
        self.predictor = predictor
        self.target = target
        self.prototypes = prototypes  # SwAV (realnet.methods.contrastive.Prototypes)
        if target is not None:
            target.requires_grad_(False)

    @property
    def target_encoder(self) -> Encoder:
        """The module that produces the targets: the EMA copy, or the online encoder itself."""
        return self.online if self.target is None else self.target

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA step ``Wa <- m Wa + (1 - m) W`` (no-op for SimSiam)."""
        if self.target is not None:
            ema_update(self.target, self.online, momentum)

    def compile_encoders(self) -> None:
        """``torch.compile`` the encoders' forward passes in place (parameter names unchanged)."""
        for enc in {id(e): e for e in (self.online, self.target) if e is not None}.values():
            enc.forward = torch.compile(enc.forward)


def build_ssl_model(cfg, spec: DatasetSpec, backbone: "BackboneFactory | None" = None) -> SSLModel:
    """Build the model of a :class:`realnet.config.train_config.TrainConfig` for dataset ``spec``, seeding the
    global torch generator with ``cfg.seed`` first (so the same seed gives the same initial
    networks, which the random-initialisation probe baseline relies on). ``backbone``: the
    factory of the trunk (:func:`realnet.nets.backbones.backbone_factory`; default: the one
    ``cfg.model`` names).

    BYOL: the target is a copy of the online encoder when ``method.target_init_copy`` (BYOL), else
    a separately initialised encoder of the same shape (the paper's public code)."""
    from realnet.nets.backbones import backbone_factory

    torch.manual_seed(cfg.seed)
    m = cfg.model
    make_trunk = backbone or backbone_factory(m, spec.channels, spec.image_size)

    from realnet.nets.norms import convert_head_norm, convert_trunk_norm

    def encoder() -> Encoder:
        trunk, feat = make_trunk()
        return Encoder(convert_trunk_norm(trunk, m.trunk_norm),
                       convert_head_norm(build_projector(feat, m.proj_hidden_dim, m.proj_dim), m.head_norm))

    online = encoder()
    predictor = convert_head_norm(build_predictor(cfg.predictor, m.proj_dim), m.head_norm)
    method = METHODS[cfg.method.name]
    target = prototypes = None
    if method.ema_target:
        target = copy.deepcopy(online) if cfg.method.target_init_copy else encoder()
    if method.extra_head is not None:
        prototypes = method.extra_head(m.proj_dim, cfg.method)
    return SSLModel(online, predictor, target, prototypes)
