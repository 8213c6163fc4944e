"""Facts both layers use, once: the DirectSet(alpha) rule that maps correlation eigenvalues to
predictor eigenvalues (THEORY.md section 3), and the scale of each training loss relative to the
theory's Eqn 1.

:func:`directset_spectrum` uses only what numpy arrays and torch tensors share (``clip``,
arithmetic, comparisons, and the largest entry along the last axis), so the linear-network
simulator (:mod:`dynamics.sgd`, numpy) and realnet's predictors (:mod:`realnet.methods.directset`,
torch, on any device and dtype) apply the same function. This module imports nothing heavy.
"""
from __future__ import annotations

from typing import Any

__all__ = ["directset_spectrum", "LOSS_SCALE"]

#: ``method.loss`` -> one view pair's loss as a multiple of Eqn 1's ``1/2 ||p - z||^2``: BYOL's
#: ``2 - 2 cos(p, z)`` is twice Eqn 1 on the normalised vectors; ``l2`` is Eqn 1 itself.
#: :mod:`realnet.methods.losses` builds its losses with it and :mod:`analysis.hparams` maps time with it.
LOSS_SCALE: dict[str, float] = {"cosine": 2.0, "l2": 1.0}


def _max_last(x: Any) -> Any:
    """The largest entry along the last axis, kept as an axis of length 1 (torch or numpy)."""
    if hasattr(x, "amax"):  # a torch tensor
        return x.amax(-1, keepdim=True)
    return x.max(axis=-1, keepdims=True)


def directset_spectrum(s: Any, *, alpha: float = 0.5, eps: float = 0.1, floor: float = 1e-4,
                       cj: float = 0.0) -> Any:
    """Predictor eigenvalues ``p_j`` from correlation eigenvalues ``s_j`` along the last axis (a
    numpy array or a torch tensor; the result is of the same kind and dtype).

    ``r_j = max(s_j, 0) / max_k max(s_k, 0)`` (all 0 when every ``s_j <= 0``). ``cj == 0``:
    ``p_j = max(r_j^alpha + eps, floor)`` (DirectPred at ``alpha = 1/2``, DirectSet(alpha)
    otherwise). ``cj != 0`` (the paper's Table 7): ``p_j = max(r_j - cj, floor)^alpha``.
    """
    s_pos = s.clip(min=0)
    top = _max_last(s_pos)
    r = s_pos / (top + (top == 0))  # top 0: every entry is 0, divided by 1
    if cj != 0:
        return (r - cj).clip(min=floor) ** alpha
    return (r ** alpha + eps).clip(min=floor)
