"""The mathematics of the predictors (pure functions on tensors): the running correlation, the
DirectSet / DirectPred and DirectCopy rules, the ridge ("optimal") predictor, feature blocks and the
partitioned predictor's sides. Definitions, equations and the paper's conventions are in
:mod:`realnet.methods.predictors` (module docstring) and THEORY.md section 3; the modules there apply them.
"""
from __future__ import annotations

from typing import Callable

import torch

from dynamics.directset import directset_spectrum
from realnet.methods.losses import at_least_float32
from analysis.errors import ConfigError

__all__ = ["batch_moment", "running_update", "directset_spectrum", "directpred_weight",
           "directcopy_weight", "optimal_weight", "block_indices", "blockwise", "hyperplane_sides",
           "side_moments", "partitioned_predict"]


def batch_moment(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_i a_i b_i^T`` for rows ``a_i, b_i`` of ``(n, d)`` tensors (``b = a`` by default):
    the uncentred second moment (``(d, d)``, row index from ``a``)."""
    b = a if b is None else b
    return a.T @ b / a.shape[0]


def running_update(prev: torch.Tensor, new: torch.Tensor, rho: float, first: torch.Tensor | bool) -> torch.Tensor:
    """``rho prev + (1 - rho) new``, or ``new`` when ``first`` (the first batch initialises)."""
    return torch.where(torch.as_tensor(first, device=new.device), new, rho * prev + (1.0 - rho) * new)


def directpred_weight(F: torch.Tensor, *, alpha: float = 0.5, eps: float = 0.1, floor: float = 1e-4,
                      cj: float = 0.0) -> torch.Tensor:
    """``Wp = U diag(p) U^T`` for ``F = U diag(s) U^T`` (eigh in float32 or F's wider dtype),
    ``p = directset_spectrum(s)``; a batch ``(..., d, d)`` of correlations gives a batch of weights."""
    F = at_least_float32(F)
    s, U = torch.linalg.eigh(F)
    p = directset_spectrum(s, alpha=alpha, eps=eps, floor=floor, cj=cj)
    return (U * p.unsqueeze(-2)) @ U.transpose(-1, -2)


def directcopy_weight(F: torch.Tensor, *, eps_copy: float = 0.25) -> torch.Tensor:
    """DirectCopy ``Wp = F / ||F||_2 + eps_copy I`` (spectral norm; 0/0 gives ``eps_copy I``); a
    batch ``(..., d, d)`` gives a batch of weights."""
    F = at_least_float32(F)
    norm = torch.linalg.matrix_norm(F, ord=2).clamp_min(torch.finfo(F.dtype).tiny)
    return F / norm[..., None, None] + eps_copy * torch.eye(F.shape[-1], dtype=F.dtype, device=F.device)


def optimal_weight(C_ff: torch.Tensor, C_tf: torch.Tensor, reg: float) -> torch.Tensor:
    """Ridge solution ``Wp = C_tf (C_ff + reg I)^{-1}`` of ``min E||Wp f - z_t||^2 + reg ||Wp||_F^2``
    (stationarity: ``Wp C_ff - C_tf + reg Wp = 0``), solved in float64 and returned in float64."""
    A = C_ff.double() + reg * torch.eye(C_ff.shape[0], dtype=torch.float64, device=C_ff.device)
    # (C_ff + reg I) is symmetric, so Wp^T = (C_ff + reg I)^{-1} C_tf^T.
    Wp = torch.linalg.solve(A, C_tf.double().T).T
    if not torch.isfinite(Wp).all():
        raise FloatingPointError("optimal predictor: C_ff + reg I is singular; raise predictor.optimal_reg")
    return Wp


def block_indices(dim: int, k: int, seed: int) -> list[torch.Tensor]:
    """``k`` index blocks of a seeded random permutation of ``range(dim)`` (sizes differ by at most
    one, the larger ones first). ``k == 1`` gives the identity order."""
    if not 1 <= k <= dim:
        raise ConfigError(f"predictor.feature_blocks: must lie in [1, d={dim}], got {k}")
    if k == 1:
        return [torch.arange(dim)]
    perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
    return list(torch.tensor_split(perm, k))


def blockwise(F: torch.Tensor, blocks: list[torch.Tensor], block_weight: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``Wp`` with ``Wp[I_b, I_b] = block_weight(F[I_b, I_b])`` for each block and 0 elsewhere."""
    if len(blocks) == 1:
        return block_weight(F)
    Wp = torch.zeros_like(F)
    for idx in blocks:
        idx = idx.to(F.device)
        Wp[idx[:, None], idx] = block_weight(F[idx[:, None], idx]).to(F.dtype)
    return Wp


def hyperplane_sides(f: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
    """``(B, k)`` bool: sample ``b`` is on the positive side of hyperplane ``i`` when
    ``<w_i, f_b>`` is at least the batch mean of ``<w_i, f>`` (``f``: ``(B, d)`` one view's batch,
    ``planes``: ``(d, k)``, column ``i`` is ``w_i``)."""
    proj = f @ planes
    return proj >= proj.mean(dim=0, keepdim=True)


def side_moments(f: torch.Tensor, sides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per hyperplane ``i``, the mean of ``f_b f_b^T`` over the samples on its positive side and on
    its negative side (``(k, d, d)`` each; zero where a side is empty) and the two sample counts
    ``(k,)``. ``f``: ``(n, d)``, ``sides``: ``(n, k)`` bool."""
    on = sides.to(f.dtype)
    off = 1.0 - on
    n_pos, n_neg = on.sum(0), off.sum(0)
    m_pos = torch.einsum("nk,nd,ne->kde", on, f, f) / n_pos.clamp_min(1)[:, None, None]
    m_neg = torch.einsum("nk,nd,ne->kde", off, f, f) / n_neg.clamp_min(1)[:, None, None]
    return m_pos, m_neg, n_pos, n_neg


def partitioned_predict(f: torch.Tensor, sides: torch.Tensor, W_pos: torch.Tensor,
                        W_neg: torch.Tensor) -> torch.Tensor:
    """``p_b = (1/k) sum_i W_i(side) f_b`` with ``W_i(side) = W_pos[i]`` on the positive side of
    hyperplane ``i`` and ``W_neg[i]`` on the negative one (``f``: ``(B, d)``, ``sides``: ``(B, k)``,
    weights ``(k, d, d)`` applied as ``W f``)."""
    on = sides.to(f.dtype).unsqueeze(-1)
    y_pos = torch.einsum("bd,ked->bke", f, W_pos.to(f.dtype))
    y_neg = torch.einsum("bd,ked->bke", f, W_neg.to(f.dtype))
    return (on * y_pos + (1.0 - on) * y_neg).mean(dim=1)
