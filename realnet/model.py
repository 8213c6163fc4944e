"""The assembled SSL model (THEORY.md section 4) and the loss of one step.

An :class:`Encoder` is a trunk followed by a projector (image -> ``f``). :class:`SSLModel` holds
the online encoder, the predictor and, for BYOL, the EMA target encoder; for SimSiam the target is
the online encoder itself (``target`` is None). :func:`ssl_loss` computes the loss of one step
from two augmented views and returns it with the detached projector outputs that the predictors
observe (``F`` of section 3 is built from them).

In the theory's terms (Eqn 1): online ``W`` = encoder, ``Wp`` = predictor, ``Wa`` = target; the
loss is ``loss(Wp f1, sg(f2a))`` summed over both view orders.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from .data import DatasetSpec
from .losses import at_least_float32
from .models import build_projector
from .momentum import ema_update
from .predictors import Predictor, build_predictor

if TYPE_CHECKING:
    from .backbones import BackboneFactory

__all__ = ["Encoder", "SSLModel", "StepOutput", "ssl_loss", "build_ssl_model", "build_objective"]


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
        self.prototypes = prototypes  # SwAV (realnet.objectives.Prototypes)
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


@dataclass
class StepOutput:
    """``loss`` (scalar, differentiable); ``z_online``/``z_target``: detached projector outputs
    (float32, or float64 for a float64 model), shape (2, B, d) = [view 1, view 2]."""

    loss: torch.Tensor
    z_online: torch.Tensor
    z_target: torch.Tensor


def ssl_loss(model: SSLModel, x1: torch.Tensor, x2: torch.Tensor,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
             stop_grad: bool = True, symmetric: bool = True) -> StepOutput:
    """Loss of one step from two views (each view through the networks on its own, so BatchNorm
    statistics are per view as in BYOL/SimSiam).

    ``symmetric``: ``loss(p1, t2) + loss(p2, t1)``; else ``loss(p1, t2)``. ``stop_grad=False``
    (SimSiam only) lets the gradient flow into the targets."""
    z1, z2 = model.online(x1), model.online(x2)
    p1, p2 = model.predictor.predict_views(z1, z2 if symmetric else None)
    if model.target is None:
        t1, t2 = (z1.detach(), z2.detach()) if stop_grad else (z1, z2)
    else:
        with torch.no_grad():
            t1, t2 = model.target(x1), model.target(x2)
    loss = loss_fn(p1, t2) + (loss_fn(p2, t1) if symmetric else 0.0)
    z_online = at_least_float32(torch.stack([z1.detach(), z2.detach()]))
    z_target = at_least_float32(torch.stack([t1.detach(), t2.detach()]))
    return StepOutput(loss, z_online, z_target)


def build_ssl_model(cfg, spec: DatasetSpec, backbone: "BackboneFactory | None" = None) -> SSLModel:
    """Build the model of a :class:`realnet.config.TrainConfig` for dataset ``spec``, seeding the
    global torch generator with ``cfg.seed`` first (so the same seed gives the same initial
    networks, which the random-initialisation probe baseline relies on). ``backbone``: the
    factory of the trunk (:func:`realnet.backbones.backbone_factory`; default: the one
    ``cfg.model`` names).

    BYOL: the target is a copy of the online encoder when ``method.target_init_copy`` (BYOL), else
    a separately initialised encoder of the same shape (the paper's public code)."""
    from .backbones import backbone_factory

    torch.manual_seed(cfg.seed)
    m = cfg.model
    make_trunk = backbone or backbone_factory(m, spec.channels, spec.image_size)

    from .norms import convert_head_norm, convert_trunk_norm

    def encoder() -> Encoder:
        trunk, feat = make_trunk()
        return Encoder(convert_trunk_norm(trunk, m.trunk_norm),
                       convert_head_norm(build_projector(feat, m.proj_hidden_dim, m.proj_dim), m.head_norm))

    online = encoder()
    predictor = convert_head_norm(build_predictor(cfg.predictor, m.proj_dim), m.head_norm)
    target = prototypes = None
    if cfg.method.name == "byol":
        target = copy.deepcopy(online) if cfg.method.target_init_copy else encoder()
    if cfg.method.name == "swav":
        from .objectives import Prototypes

        prototypes = Prototypes(m.proj_dim, cfg.method.swav_prototypes)
    return SSLModel(online, predictor, target, prototypes)


def build_objective(method_cfg) -> Callable[[SSLModel, torch.Tensor, torch.Tensor], "StepOutput"]:
    """The loss of one step for ``method.name`` (a function of the model and the two views
    returning ``loss``, ``z_online``, ``z_target``): :func:`ssl_loss` for BYOL / SimSiam, else
    :mod:`realnet.objectives`."""
    from functools import partial

    from .losses import LOSSES
    from .objectives import simclr_step_loss, swav_step_loss

    m = method_cfg
    if m.name == "simclr":
        return partial(simclr_step_loss, temperature=m.tau)
    if m.name == "swav":
        return partial(swav_step_loss, temperature=m.tau, epsilon=m.swav_epsilon,
                       iterations=m.swav_iterations)
    return partial(ssl_loss, loss_fn=LOSSES[m.loss], stop_grad=m.stop_grad, symmetric=m.symmetric)
