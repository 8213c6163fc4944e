"""Optimisers and learning-rate schedules of the real-network recipe.

Paper's recipe (THEORY.md section 4): SGD, lr 0.03, momentum 0.9, weight decay 4e-4, constant lr.
In the theory's terms the online learning rate is ``a``, the predictor's ``a * alpha_p`` (its own
param group, see ``realnet.methods.predictors.predictor_param_groups``) and the weight decay ``a * eta``.

Optimisers (registry :data:`OPTIMIZERS`):

``"sgd"``
    ``torch.optim.SGD`` (heavy-ball momentum, coupled L2 weight decay on every parameter, as the
    paper's code).
``"lars"``
    :class:`LARS` (You et al. 2017, as used by BYOL). For a parameter ``w`` with gradient ``g``:
    ``d = g + wd w``, trust ratio ``r = eta ||w|| / ||d||`` (``r = 1`` when either norm is 0),
    momentum buffer ``v <- m v + r d`` (``v = r d`` on the first step), ``w <- w - lr v``.
    Parameters with ``ndim <= 1`` (biases, BatchNorm scales and shifts) are *excluded* from both the
    weight decay and the trust-ratio adaptation: for them ``d = g``, ``r = 1`` (plain momentum SGD).
    The lr multiplies the buffer at use (torch's SGD convention), so a schedule takes effect at once.

Schedules (registry :data:`LR_SCHEDULES`, multipliers of each group's base lr, see :func:`lr_at`):
optional linear warm-up ``(k + 1) / warmup_steps`` for ``k < warmup_steps``, then ``"constant"``
(1) or ``"cosine"`` (``(1 + cos(pi (k - warmup) / (K - warmup))) / 2``, reaching 0 at ``k = K``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch.optim import Optimizer

from realnet.config.ranges import allowed_of, check_fields, fail, integer, knob, number, one_of

__all__ = ["OptimConfig", "LARS", "OPTIMIZERS", "LR_SCHEDULES", "build_optimizer", "lr_at"]


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling with heavy-ball momentum (see the module docstring).

    Per-group options: ``lr``, ``momentum``, ``weight_decay``, ``eta`` (trust coefficient) and
    ``exclude_1d`` (exclude parameters with ``ndim <= 1`` from weight decay and adaptation).
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 1e-3, exclude_1d: bool = True) -> None:
        if not lr > 0:
            raise ValueError(f"lr: must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum: must lie in [0, 1), got {momentum}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay: must be >= 0, got {weight_decay}")
        if not eta > 0:
            raise ValueError(f"eta: must be > 0, got {eta}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, exclude_1d=exclude_1d)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, m, wd, eta = group["lr"], group["momentum"], group["weight_decay"], group["eta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if not (group["exclude_1d"] and p.ndim <= 1):
                    if wd != 0:
                        d = d.add(p, alpha=wd)
                    w_norm = torch.linalg.vector_norm(p)
                    d_norm = torch.linalg.vector_norm(d)
                    ok = (w_norm > 0) & (d_norm > 0)
                    trust = torch.where(ok, eta * w_norm / torch.where(ok, d_norm, 1.0), 1.0)
                    d = d * trust
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = d.clone()
                else:
                    buf.mul_(m).add_(d)
                p.add_(buf, alpha=-lr)
        return loss


def _check(ok: bool, key: str, allowed: str, value) -> None:
    if not ok:
        fail(key, value, allowed)


def _sgd(param_groups: list[dict], cfg: OptimConfig) -> Optimizer:
    return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _lars(param_groups: list[dict], cfg: OptimConfig) -> Optimizer:
    return LARS(param_groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, eta=cfg.lars_eta)


OPTIMIZERS: dict[str, Callable[[list[dict], OptimConfig], Optimizer]] = {"sgd": _sgd, "lars": _lars}


def _constant(progress: float) -> float:
    return 1.0


def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


LR_SCHEDULES: dict[str, Callable[[float], float]] = {"constant": _constant, "cosine": _cosine}


@dataclass
class OptimConfig:
    """Optimiser and lr schedule; defaults are the paper's recipe (SGD 0.03 / 0.9 / 4e-4, constant)."""

    name: str = knob("sgd", one_of(OPTIMIZERS))  # sgd | lars
    lr: float = knob(0.03, number(0.0, 1e6, lo_open=True))  # online learning rate `a` (the base of every group); above 1e6 only overflows
    momentum: float = knob(0.9, number(0.0, 1.0, hi_open=True))
    weight_decay: float = knob(4e-4, number(0.0))         # `a * eta` in the theory's terms
    schedule: str = knob("constant", one_of(LR_SCHEDULES))  # constant | cosine
    warmup_steps: int = knob(0, integer(0))                # linear warm-up length in optimiser steps
    lars_eta: float = knob(1e-3, number(0.0, lo_open=True))  # LARS trust coefficient (used only by "lars")

    def validate(self) -> None:
        """ValueError naming ``optim.<key>`` and the allowed values for any invalid value."""
        check_fields(self, "optim.")


def build_optimizer(param_groups: list[dict], cfg: OptimConfig) -> Optimizer:
    """Optimiser over ``param_groups`` (torch's list of ``{"params": ..., optional "lr", ...}``);
    options a group leaves out come from ``cfg``."""
    cfg.validate()
    if not param_groups:
        raise ValueError("param_groups: must hold at least one group")
    return OPTIMIZERS[cfg.name](param_groups, cfg)


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Learning-rate multiplier for optimiser step ``step`` (0-based, ``0 <= step <= total_steps``).

    Warm-up ``(step + 1) / warmup_steps`` while ``step < warmup_steps``; then the schedule at
    progress ``(step - warmup) / (total_steps - warmup)`` in [0, 1].
    """
    allowed_of(OptimConfig, "schedule").check("optim.schedule", cfg.schedule)  # per step: this key only
    _check(total_steps >= 1, "total_steps", "an integer >= 1", total_steps)
    _check(0 <= step <= total_steps, "step", f"an integer in [0, total_steps={total_steps}]", step)
    w = cfg.warmup_steps
    _check(w < total_steps, "optim.warmup_steps", f"an integer in [0, total_steps={total_steps})", w)
    if step < w:
        return (step + 1) / w
    return LR_SCHEDULES[cfg.schedule]((step - w) / (total_steps - w))
