"""Prediction losses of one ordered view pair (``p`` = prediction, ``z`` = target).

- :func:`byol_cosine`: ``mean_i (2 - 2 cos(p_i, z_i)) = mean_i ||p_i/|p_i| - z_i/|z_i| ||^2``, BYOL's
  normalised L2 loss and the paper's public code (which writes it ``-2 cos``; the constant does
  not change the gradient). The training step sums it over the two view pairs
  (:func:`ssl_loss`), so the step's loss lies in ``[0, 8]``; its gradient is twice
  that of a ``-cos - cos`` loss, the scale for which the recipe's lr 0.03 and wd 4e-4 are tuned
  (THEORY.md, section 4).
- :func:`l2_loss`: ``1/2 mean_i ||p_i - z_i||^2``, the plain L2 loss of the linear theory (Eqn 1).

Both compute in float32 or wider whatever the input dtype (so that a bf16 autocast forward does not lose
the normalisation) and take ``z`` as given: the caller applies the stop-gradient.

:func:`ssl_loss` is BYOL's and SimSiam's loss of one step (both view orders through the
predictor, the targets from the EMA encoder or the online one), returned as a :class:`StepOutput`
with the detached projector outputs that the predictors observe (``F`` of THEORY.md section 3 is
built from them). In the theory's terms (Eqn 1): online ``W`` = encoder, ``Wp`` = predictor,
``Wa`` = target; the loss is ``loss(Wp f1, sg(f2a))`` summed over both view orders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from dynamics.directset import LOSS_SCALE

__all__ = ["byol_cosine", "l2_loss", "LOSSES", "StepOutput", "ssl_loss", "at_least_float32"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_pair(p: torch.Tensor, z: torch.Tensor) -> None:
    if p.shape != z.shape or p.ndim != 2:
        raise ValueError(f"p, z: expected two (B, d) tensors of one shape, got {tuple(p.shape)} and {tuple(z.shape)}")


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or unchanged when it is already float32/float64."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def byol_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``mean_i (2 - 2 <p_i, z_i> / (|p_i| |z_i|))`` (BYOL's loss per view pair).

    Norms are clamped below at 1e-12 (``F.normalize``), so an all-zero row gives 2, not NaN.
    """
    _check_pair(p, z)
    p = F.normalize(at_least_float32(p), dim=1)
    z = F.normalize(at_least_float32(z), dim=1)
    return (LOSS_SCALE["cosine"] * (1.0 - (p * z).sum(dim=1))).mean()  # = 2 - 2 cos, bit for bit


def l2_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Plain L2 loss of the linear theory, ``J = 1/2 mean_i ||p_i - z_i||^2`` (Eqn 1)."""
    _check_pair(p, z)
    return LOSS_SCALE["l2"] * 0.5 * (at_least_float32(p) - at_least_float32(z)).pow(2).sum(dim=1).mean()


#: ``method.loss`` -> loss of one ordered view pair.
LOSSES: dict[str, LossFn] = {"cosine": byol_cosine, "l2": l2_loss}


@dataclass
class StepOutput:
    """``loss`` (scalar, differentiable); ``z_online``/``z_target``: detached projector outputs
    (float32, or float64 for a float64 model), shape (2, B, d) = [view 1, view 2]."""

    loss: torch.Tensor
    z_online: torch.Tensor
    z_target: torch.Tensor


def ssl_loss(model, x1: torch.Tensor, x2: torch.Tensor,
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
