"""Prediction losses of the real-network recipe.

- :func:`negative_cosine`: ``-mean_i cos(p_i, z_i)``, the loss of BYOL / SimSiam / DirectPred real
  runs (THEORY.md section 4). Invariant to a positive rescaling of either argument, per sample.
- :func:`l2_loss`: ``1/2 mean_i ||p_i - z_i||^2``, the plain L2 loss of the linear theory (Eqn 1).
- :func:`symmetrised_loss`: ``loss(p1, z2) + loss(p2, z1)``, the two-view symmetrisation (a sum,
  as in BYOL; the negative cosine version therefore lies in ``[-2, 2]``).

Both losses compute in float32 whatever the input dtype (so that a bf16/fp16 autocast forward does
not lose the normalisation), and take ``z`` as given: the caller applies the stop-gradient
(``z.detach()``) where the method asks for it.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["negative_cosine", "l2_loss", "symmetrised_loss", "LOSSES", "get_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_pair(p: torch.Tensor, z: torch.Tensor) -> None:
    if p.shape != z.shape or p.ndim != 2:
        raise ValueError(f"p, z: expected two (B, d) tensors of one shape, got {tuple(p.shape)} and {tuple(z.shape)}")


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-cos(p_i, z_i) = -<p_i, z_i> / (||p_i|| ||z_i||)``.

    Norms are clamped below at 1e-12 (``F.normalize``), so an all-zero row gives 0, not NaN.
    """
    _check_pair(p, z)
    p = F.normalize(p.float(), dim=1)
    z = F.normalize(z.float(), dim=1)
    return -(p * z).sum(dim=1).mean()


def l2_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Plain L2 loss of the linear theory, ``J = 1/2 mean_i ||p_i - z_i||^2`` (Eqn 1)."""
    _check_pair(p, z)
    return 0.5 * (p.float() - z.float()).pow(2).sum(dim=1).mean()


def symmetrised_loss(loss_fn: LossFn, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor,
                     z2: torch.Tensor) -> torch.Tensor:
    """Two-view loss ``loss_fn(p1, z2) + loss_fn(p2, z1)``: each view's prediction against the
    other view's target. The caller detaches ``z1, z2`` (stop-gradient)."""
    return loss_fn(p1, z2) + loss_fn(p2, z1)


LOSSES: dict[str, LossFn] = {"cosine": negative_cosine, "l2": l2_loss}


def get_loss(name: str) -> LossFn:
    """The loss registered under ``name``; ValueError naming ``loss`` otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"loss: unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
