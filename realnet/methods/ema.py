"""The EMA (momentum) target of BYOL.

Discrete form of ``dWa/dt = beta (W - Wa)`` (THEORY.md section 1): after each optimiser step
``Wa <- gamma_a Wa + (1 - gamma_a) W`` with ``gamma_a = 1 - a beta`` (BYOL's 0.996 means
``a beta = 0.004``). Buffers (BatchNorm running statistics) are copied, not averaged.

``momentum_at`` gives ``gamma_a`` at a step: constant, or BYOL's cosine increase
``1 - (1 - base)(cos(pi k / K) + 1) / 2`` from ``base`` at ``k = 0`` to 1 at ``k = K``.

Note (THEORY.md section 4): BYOL initialises the target as a copy of the online network, the
paper's public code does not (``method.target_init_copy``, :func:`realnet.nets.ssl_model.build_ssl_model`).
"""
from __future__ import annotations


import torch
from torch import nn

from realnet.training.optim import LR_SCHEDULES

__all__ = ["ema_update", "momentum_at"]


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


def momentum_at(step: int, total_steps: int, base: float, schedule: str = "constant") -> float:
    """EMA momentum ``gamma_a`` at optimiser step ``step`` (0-based, ``0 <= step <= total_steps``).

    One schedule family serves the lr and the momentum (:data:`realnet.training.optim.LR_SCHEDULES`, a
    factor ``f`` of the progress ``step / total``): ``gamma = 1 - (1 - base) f``, i.e.
    ``"constant"``: ``base`` (``f = 1``, returned as given); ``"cosine"`` (BYOL):
    ``1 - (1 - base)(cos(pi step/total) + 1)/2``.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule: unknown momentum schedule {schedule!r}; choose one of {sorted(LR_SCHEDULES)}")
    if not (0.0 <= base <= 1.0):
        raise ValueError(f"base: EMA momentum must lie in [0, 1], got {base}")
    if total_steps < 1:
        raise ValueError(f"total_steps: must be >= 1, got {total_steps}")
    if not (0 <= step <= total_steps):
        raise ValueError(f"step: must lie in [0, total_steps={total_steps}], got {step}")
    f = LR_SCHEDULES[schedule](step / total_steps)
    return float(base) if f == 1.0 else 1.0 - (1.0 - float(base)) * f
