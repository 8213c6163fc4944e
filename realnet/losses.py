"""Prediction losses of one ordered view pair (``p`` = prediction, ``z`` = target).

- :func:`byol_cosine`: ``mean_i (2 - 2 cos(p_i, z_i)) = mean_i ||p_i/|p_i| - z_i/|z_i| ||^2``, BYOL's
  normalised L2 loss and the paper's public code (which writes it ``-2 cos``; the constant does
  not change the gradient). The training step sums it over the two view pairs
  (:func:`realnet.model.ssl_loss`), so the step's loss lies in ``[0, 8]``; its gradient is twice
  that of a ``-cos - cos`` loss, the scale for which the recipe's lr 0.03 and wd 4e-4 are tuned
  (THEORY.md, section 4).
- :func:`l2_loss`: ``1/2 mean_i ||p_i - z_i||^2``, the plain L2 loss of the linear theory (Eqn 1).

Both compute in float32 or wider whatever the input dtype (so that a bf16 autocast forward does not lose
the normalisation) and take ``z`` as given: the caller applies the stop-gradient.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["byol_cosine", "l2_loss", "LOSSES"]

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
    return (2.0 - 2.0 * (p * z).sum(dim=1)).mean()


def l2_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Plain L2 loss of the linear theory, ``J = 1/2 mean_i ||p_i - z_i||^2`` (Eqn 1)."""
    _check_pair(p, z)
    return 0.5 * (at_least_float32(p) - at_least_float32(z)).pow(2).sum(dim=1).mean()


#: ``method.loss`` -> loss of one ordered view pair.
LOSSES: dict[str, LossFn] = {"cosine": byol_cosine, "l2": l2_loss}

