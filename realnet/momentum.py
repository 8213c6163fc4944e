"""The EMA (momentum) target of BYOL.

Discrete form of ``dWa/dt = beta (W - Wa)`` (THEORY.md section 1): after each optimiser step
``Wa <- gamma_a Wa + (1 - gamma_a) W`` with ``gamma_a = 1 - a beta`` (BYOL's 0.996 means
``a beta = 0.004``). Buffers (BatchNorm running statistics) are copied, not averaged.

``momentum_at`` gives ``gamma_a`` at a step: constant, or BYOL's cosine increase
``1 - (1 - base)(cos(pi k / K) + 1) / 2`` from ``base`` at ``k = 0`` to 1 at ``k = K``.

Note (THEORY.md section 4): BYOL initialises the target as a copy of the online network, the
paper's public code does not; :func:`copy_online_to_target` is the explicit copy for callers that
want BYOL's start.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["ema_update", "copy_online_to_target", "momentum_at", "MOMENTUM_SCHEDULES"]


def _paired(target: nn.Module, online: nn.Module, kind: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    named_t = dict(getattr(target, f"named_{kind}")())
    named_o = dict(getattr(online, f"named_{kind}")())
    if named_t.keys() != named_o.keys():
        diff = sorted(named_t.keys() ^ named_o.keys())
        raise ValueError(f"target, online: {kind} differ by name: {diff[:5]}")
    for k, t in named_t.items():
        if t.shape != named_o[k].shape:
            raise ValueError(f"target, online: {kind[:-1]} {k!r} has shapes {tuple(t.shape)} and {tuple(named_o[k].shape)}")
    keys = list(named_o)
    return [named_t[k] for k in keys], [named_o[k] for k in keys]


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: parameters ``t <- m t + (1 - m) o``; buffers ``t <- o`` (BN running stats).

    ``momentum = m`` must lie in [0, 1]; ``m = 0`` copies the online parameters, ``m = 1`` freezes
    the target's parameters (its buffers are still copied). Parameters and buffers are matched by name; a mismatch raises ValueError.
    """
    m = float(momentum)
    if not (0.0 <= m <= 1.0):
        raise ValueError(f"momentum: must lie in [0, 1], got {momentum}")
    t_params, o_params = _paired(target, online, "parameters")
    if t_params:
        # lerp: t + w (o - t) = (1 - w) t + w o with w = 1 - m.
        torch._foreach_lerp_(t_params, [o.detach() for o in o_params], 1.0 - m)
    t_bufs, o_bufs = _paired(target, online, "buffers")
    for t, o in zip(t_bufs, o_bufs):
        t.copy_(o)


@torch.no_grad()
def copy_online_to_target(target: nn.Module, online: nn.Module) -> None:
    """BYOL's initialisation: target parameters and buffers become exact copies of the online ones."""
    for kind in ("parameters", "buffers"):
        for t, o in zip(*_paired(target, online, kind)):
            t.copy_(o)


def _constant(step: int, total_steps: int, base: float) -> float:
    return base


def _cosine(step: int, total_steps: int, base: float) -> float:
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / total_steps) + 1.0) / 2.0


MOMENTUM_SCHEDULES: dict[str, Callable[[int, int, float], float]] = {"constant": _constant, "cosine": _cosine}


def momentum_at(step: int, total_steps: int, base: float, schedule: str = "constant") -> float:
    """EMA momentum ``gamma_a`` at optimiser step ``step`` (0-based, ``0 <= step <= total_steps``).

    ``"constant"``: ``base``. ``"cosine"`` (BYOL): ``1 - (1 - base)(cos(pi step/total) + 1)/2``.
    """
    if schedule not in MOMENTUM_SCHEDULES:
        raise ValueError(f"schedule: unknown momentum schedule {schedule!r}; choose one of {sorted(MOMENTUM_SCHEDULES)}")
    if not (0.0 <= base <= 1.0):
        raise ValueError(f"base: EMA momentum must lie in [0, 1], got {base}")
    if total_steps < 1:
        raise ValueError(f"total_steps: must be >= 1, got {total_steps}")
    if not (0 <= step <= total_steps):
        raise ValueError(f"step: must lie in [0, total_steps={total_steps}], got {step}")
    return MOMENTUM_SCHEDULES[schedule](step, total_steps, float(base))
