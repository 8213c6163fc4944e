"""Predictor heads: learned (two-layer MLP, linear) and directly set (DirectPred, DirectCopy, the
regularised least-squares "optimal" predictor), plus the identity for the no-predictor ablation.

All predictors map projector outputs ``z`` of shape ``(B, d)`` to ``(B, d)``. A linear predictor
applies ``out = z @ Wp.T`` (``Wp`` is ``weight_matrix()``). Registry: :data:`PREDICTORS`, built by
:func:`build_predictor`; the relative predictor learning rate ``alpha_p`` and a predictor-only
weight decay enter the optimiser through :func:`predictor_param_groups`.

Running correlation (every predictor keeps it; THEORY.md section 3)
    ``F <- rho F + (1 - rho) mean_i f_i f_i^T`` over the *2B* detached online projector outputs of
    both views of a step (one update per step, not mean-centred); the first observed step sets
    ``F`` to its batch moment. ``F`` is a float32 buffer, updated with autocast disabled.

DirectPred / DirectSet(alpha) (``"directpred"``)
    Eigen-decompose ``F = U diag(s) U^T`` (``torch.linalg.eigh``, float32) and set
    ``Wp = U diag(p) U^T`` with (see :func:`directset_spectrum`)

    - ``cj == 0``: ``p_j = max((max(s_j, 0) / s_max)^alpha + eps, floor)``; ``alpha = 1/2`` is
      DirectPred's ``p_j = sqrt(s_j / s_max) + eps``;
    - ``cj != 0`` (the c_j ablation, paper's Table 7): ``p_j = max(max(s_j, 0)/s_max - cj, floor)^alpha``,
      i.e. ``sqrt(max(s_j/s_max - c_j, floor))`` at ``alpha = 1/2``; ``eps`` is not used there.
      Sign convention of Eqn 14: ``s = p^2 + c``, so ``cj > 0`` removes, ``cj < 0`` adds.

    ``s_max`` is clamped below at the smallest positive float, so an all-zero ``F`` gives
    ``p = max(eps, floor)`` (or ``max(-cj, floor)^alpha``).

DirectCopy (``"directcopy"``)
    ``Wp = F / ||F||_2 + eps_copy I`` with the spectral norm, which for the PSD ``F`` is its top
    eigenvalue: the top mode of ``F / ||F||_2`` is 1, as DirectPred's max-normalised spectrum, so
    DirectCopy equals DirectSet(alpha = 1) with ``eps = eps_copy`` and no floor, computed without
    forming eigenvectors.

Setting schedule (``directpred``, ``directcopy``: every ``freq`` steps; ``optimal``: every
``optimal_every`` steps)
    The trainer calls ``observe`` before and ``after_optimizer_step(step)`` after each optimiser
    step (``step`` counts from 1). The weight is overwritten when ``step % every == 0``; between
    settings the predictor trains by ordinary SGD (not symmetrised). With ``every == 1`` the
    weight is a pure function of ``F``: it is created with ``requires_grad=False`` and takes no
    optimiser state. This gives the same trajectory as the paper's code, which trains the
    weight by SGD and then overwrites it after every step. With ``every > 1`` the optimiser's
    momentum buffer of the weight is kept across a setting by default, as in the paper's code
    (which writes the weight in place and leaves SGD's state alone): the steps after a setting
    continue from the set value with the momentum of the past gradients. With
    ``reset_momentum = True`` that buffer is zeroed at each setting (the caller passes the
    optimiser to ``after_optimizer_step``), so SGD restarts from the set value without stale
    momentum. The value written is never altered by the optimiser before the next forward pass.
    The paper's code counts steps from 0 and so sets after its 1st, (k+1)-th, ... steps; here
    settings fall on steps k, 2k, ... (the first k steps use the initial weight).

Partitioned DirectPred (``partitions = k > 1`` for ``directpred`` and ``directcopy``; the paper's
input-dependent predictor, THEORY.md section 3)
    ``k`` random hyperplanes ``w_i`` (the columns of a ``(d, k)`` standard normal matrix drawn once
    from a generator seeded by ``partition_seed``). In a batch ``f`` of one view, sample ``b`` lies on
    the positive side of hyperplane ``i`` when ``<w_i, f_b> >= mean_b' <w_i, f_b'>`` (each view's own
    batch mean). Each side of each hyperplane keeps its own running correlation ``F_i+``, ``F_i-``:
    the mean of ``f_b f_b^T`` over the samples of both views on that side, averaged with ``rho``
    (the first batch that reaches a side initialises it), and its own weight ``W_i+-`` computed
    from it as DirectPred/DirectCopy computes ``Wp`` from ``F``. A sample's prediction is
    ``(1/k) sum_i W_i(side_i(f)) f``, a piecewise-linear predictor. Order as in the paper's code:
    in a training forward pass (:meth:`Predictor.predict_views`) the correlations are updated with
    the current batch first, the weights recomputed, then the batch predicted, at every step (so
    ``freq`` must be 1). Outside training the stored weights are used. One difference: a side that
    no sample of a step reaches keeps its correlation (the paper's code averages in a zero matrix).

Feature blocks (``feature_blocks = k`` for ``directpred`` and ``directcopy``; not the paper's method)
    A seeded random permutation ``pi`` of the ``d`` feature indices (``torch.randperm`` with a
    generator seeded by ``block_seed``) is cut into ``k`` consecutive blocks ``I_1..I_k`` with
    ``torch.tensor_split``: when ``k`` does not divide ``d``, the first ``d mod k`` blocks get
    ``ceil(d/k)`` indices and the rest ``floor(d/k)``. Block ``b`` has its own correlation
    ``F_b = F[I_b, I_b]`` (the running average is entry-wise, so it equals a separately kept one)
    and its own block ``Wp[I_b, I_b]`` computed from ``F_b`` alone (normalised by its own top
    eigenvalue); every entry outside the blocks is 0. So ``Wp`` is block-diagonal after permuting
    rows and columns by ``pi``.

Optimal (``"optimal"``, paper's Table 1)
    ``Wp = argmin E||Wp f - z_t||^2 + reg ||Wp||_F^2 = C_tf (C_ff + reg I)^{-1}`` with running
    (rho) estimates ``C_ff = E[f f^T]`` (= ``F``) and ``C_tf = E[z_t f^T]`` over the pairs
    (online view 1, target view 2) and (online view 2, target view 1). Solved in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn

from .losses import at_least_float32
from .models import MLP

__all__ = [
    "PredictorConfig",
    "Predictor",
    "MLPPredictor",
    "LinearPredictor",
    "DirectPredPredictor",
    "DirectCopyPredictor",
    "OptimalPredictor",
    "IdentityPredictor",
    "PREDICTORS",
    "SPECTRAL_RULES",
    "build_predictor",
    "predictor_param_groups",
    "batch_moment",
    "running_update",
    "directset_spectrum",
    "directpred_weight",
    "directcopy_weight",
    "optimal_weight",
    "feature_blocks",
    "hyperplane_sides",
    "side_moments",
    "partitioned_predict",
    "PartitionedPredictor",
    "blockwise",
]


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class PredictorConfig:
    """Predictor choice and knobs (defaults: DirectPred with rho 0.3, eps 0.1, freq 1).

    Keys used by one predictor only must keep their defaults for the others (``bias``,
    ``symmetrize``: linear; ``cj``, ``alpha``: directpred; ``partitions``, ``feature_blocks``:
    directpred/directcopy;
    ``reset_momentum``: directpred/directcopy/optimal). Other knobs are simply unused elsewhere.
    """

    name: str = "directpred"      # registry key, see PREDICTORS
    hidden_dim: int = 512         # mlp hidden width
    bias: bool = False            # linear: add a bias
    symmetrize: bool = False      # linear: Wp <- (Wp + Wp^T)/2 after every optimiser step
    rho: float = 0.3              # running-correlation decay (all predictors)
    eps: float = 0.1              # directpred additive eps
    floor: float = 1e-4           # directpred floor on p_j
    freq: int = 1                 # directpred/directcopy: set every freq steps
    cj: float = 0.0               # directpred c_j ablation (0 = off)
    alpha: float = 0.5            # DirectSet exponent (0.5 = DirectPred)
    partitions: int = 1           # directpred/directcopy: k random hyperplanes (paper's partitioned predictor)
    partition_seed: int = 0       # seed of the hyperplanes
    feature_blocks: int = 1       # directpred/directcopy: k random blocks of feature dims
    block_seed: int = 0           # seed of the feature blocks
    eps_copy: float = 0.25        # directcopy: Wp = F/||F||_2 + eps_copy I
    optimal_every: int = 1        # optimal: set every optimal_every steps
    optimal_reg: float = 1e-2     # optimal: ridge coefficient reg
    reset_momentum: bool = False  # set predictors: zero the weight's momentum buffer at a setting
    lr_ratio: float = 1.0         # alpha_p: predictor lr = lr_ratio * lr
    weight_decay: float | None = None  # predictor-only weight decay; None = the global one

    def validate(self) -> None:
        """ValueError naming ``predictor.<key>`` and the allowed range for any invalid value."""
        if self.name not in PREDICTORS:
            raise ValueError(f"predictor.name: unknown predictor {self.name!r}; choose one of {sorted(PREDICTORS)}")
        _int_min("hidden_dim", self.hidden_dim, 1)
        for key in ("bias", "symmetrize", "reset_momentum"):
            if not isinstance(getattr(self, key), bool):
                _fail(key, "a bool", getattr(self, key))
        _number("rho", self.rho, lambda v: 0 <= v < 1, "in [0, 1)")
        _number("eps", self.eps, lambda v: v >= 0, ">= 0")
        _number("floor", self.floor, lambda v: v > 0, "> 0")
        _int_min("freq", self.freq, 1)
        _number("cj", self.cj, lambda v: v < 1, "< 1 (the top mode keeps p > floor)")
        _number("alpha", self.alpha, lambda v: v > 0, "> 0")
        _int_min("partitions", self.partitions, 1)
        _int_min("partition_seed", self.partition_seed, 0)
        _int_min("feature_blocks", self.feature_blocks, 1)
        _int_min("block_seed", self.block_seed, 0)
        if self.partitions > 1 and self.feature_blocks > 1:
            _fail("feature_blocks", "1 when predictor.partitions > 1 (one or the other)", self.feature_blocks)
        if self.partitions > 1 and self.freq != 1:
            _fail("freq", "1 when predictor.partitions > 1 (the partitioned predictor sets its weights "
                  "at every step, as the paper's code)", self.freq)
        _number("eps_copy", self.eps_copy, lambda v: v >= 0, ">= 0")
        _int_min("optimal_every", self.optimal_every, 1)
        _number("optimal_reg", self.optimal_reg, lambda v: v >= 0, ">= 0")
        _number("lr_ratio", self.lr_ratio, lambda v: v > 0, "> 0")
        if self.weight_decay is not None:
            _number("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0 or None")
        for key, names in _ONLY_FOR.items():
            if getattr(self, key) != getattr(PredictorConfig, key) and self.name not in names:
                _fail(key, f"left at its default {getattr(PredictorConfig, key)!r} unless predictor.name is one "
                      f"of {sorted(names)} (predictor.name={self.name!r})", getattr(self, key))


_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "bias": ("linear",),
    "symmetrize": ("linear",),
    "cj": ("directpred",),
    "alpha": ("directpred",),
    "partitions": ("directpred", "directcopy"),
    "feature_blocks": ("directpred", "directcopy"),
    "reset_momentum": ("directpred", "directcopy", "optimal"),
}


def _fail(key: str, allowed: str, value) -> None:
    raise ValueError(f"predictor.{key}: must be {allowed}, got {value!r}")


def _number(key: str, value, ok: Callable[[float], bool], allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        _fail(key, allowed, value)


def _int_min(key: str, value, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        _fail(key, f"an integer >= {lo}", value)


# ---------------------------------------------------------------------------------------------
# the mathematics (pure functions)
# ---------------------------------------------------------------------------------------------
def batch_moment(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_i a_i b_i^T`` for rows ``a_i, b_i`` of ``(n, d)`` tensors (``b = a`` by default):
    the uncentred second moment (``(d, d)``, row index from ``a``)."""
    b = a if b is None else b
    return a.T @ b / a.shape[0]


def running_update(prev: torch.Tensor, new: torch.Tensor, rho: float, first: torch.Tensor | bool) -> torch.Tensor:
    """``rho prev + (1 - rho) new``, or ``new`` when ``first`` (the first batch initialises)."""
    return torch.where(torch.as_tensor(first, device=new.device), new, rho * prev + (1.0 - rho) * new)


def directset_spectrum(s: torch.Tensor, *, alpha: float = 0.5, eps: float = 0.1, floor: float = 1e-4,
                       cj: float = 0.0) -> torch.Tensor:
    """Predictor eigenvalues ``p_j`` from correlation eigenvalues ``s_j`` (THEORY.md section 3).

    ``r_j = max(s_j, 0) / s_max``. ``cj == 0``: ``p_j = max(r_j^alpha + eps, floor)`` (DirectPred at
    ``alpha = 1/2``, DirectSet(alpha) otherwise). ``cj != 0``: ``p_j = max(r_j - cj, floor)^alpha``.
    """
    s_pos = s.clamp_min(0)
    r = s_pos / s_pos.amax(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    if cj != 0:
        return (r - cj).clamp_min(floor).pow(alpha)
    return (r.pow(alpha) + eps).clamp_min(floor)


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


def feature_blocks(dim: int, k: int, seed: int) -> list[torch.Tensor]:
    """``k`` index blocks of a seeded random permutation of ``range(dim)`` (sizes differ by at most
    one, the larger ones first). ``k == 1`` gives the identity order."""
    if not 1 <= k <= dim:
        raise ValueError(f"predictor.feature_blocks: must lie in [1, d={dim}], got {k}")
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


# ---------------------------------------------------------------------------------------------
# predictors
# ---------------------------------------------------------------------------------------------
class Predictor(nn.Module):
    """Base: keeps the running correlation ``F`` of the online projector outputs (module docstring)."""

    def __init__(self, cfg: PredictorConfig, dim: int) -> None:
        super().__init__()
        self.dim = int(dim)
        self.rho = float(cfg.rho)
        self.register_buffer("F", torch.zeros(self.dim, self.dim))
        self.register_buffer("n_observed", torch.zeros((), dtype=torch.long))
        # host-side "observe() has run", so that the per-step check below needs no device read
        self._observed = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_views(self, z1: torch.Tensor, z2: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predictions of the two views' projector outputs in a training step (``z2`` None: one
        view). Default: ``forward`` on each; the partitioned predictor also updates its state here,
        in the paper's order."""
        return self(z1), (None if z2 is None else self(z2))

    def _check_views(self, name: str, z: torch.Tensor) -> None:
        if z.ndim != 3 or z.shape[0] != 2 or z.shape[2] != self.dim or z.shape[1] < 1:
            raise ValueError(f"{name}: expected shape (2, B, {self.dim}) [view1, view2], got {tuple(z.shape)}")

    @torch.no_grad()
    def observe(self, z_online: torch.Tensor, z_target: torch.Tensor) -> None:
        """Update ``F`` from the detached online outputs of both views (shape ``(2, B, d)``).
        Called once per step before the optimiser step."""
        self._check_views("z_online", z_online)
        with torch.autocast(device_type=z_online.device.type, enabled=False):
            f = z_online.detach().reshape(-1, self.dim).to(self.F.dtype)
            self.F.copy_(running_update(self.F, batch_moment(f), self.rho, self.n_observed == 0))
        self.n_observed += 1
        self._observed = True

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._observed = False  # the loaded n_observed decides again (read once, see _has_observed)

    def _has_observed(self) -> bool:
        """Whether ``F`` holds at least one batch; reads the device buffer only until that is so."""
        if not self._observed:
            self._observed = int(self.n_observed) > 0
        return self._observed

    def after_optimizer_step(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Hook called after each optimiser step (``step`` counts from 1). Default: nothing."""

    def weight_matrix(self) -> torch.Tensor | None:
        """The linear ``Wp`` as applied (``out = z @ Wp.T``), or None for a non-linear predictor."""
        return None

    def correlation(self) -> torch.Tensor | None:
        """A copy of the running ``F`` (float32, ``(d, d)``), or None before the first ``observe``."""
        return self.F.clone() if int(self.n_observed) > 0 else None


class MLPPredictor(Predictor):
    """Two-layer predictor ``d -> hidden_dim -> d`` (BN without affine, ReLU; paper: 128-512-128)."""

    def __init__(self, cfg: PredictorConfig, dim: int) -> None:
        super().__init__(cfg, dim)
        self.mlp = MLP(dim, cfg.hidden_dim, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(z)


class IdentityPredictor(Predictor):
    """No predictor: ``Wp = I`` and no parameters (the no-predictor ablation)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def weight_matrix(self) -> torch.Tensor:
        return torch.eye(self.dim, device=self.F.device)


class LinearPredictor(Predictor):
    """Linear ``d x d`` predictor trained by SGD (bias-free unless ``bias``). With ``symmetrize``
    the weight starts symmetric and is replaced by ``(W + W^T)/2`` after every optimiser step."""

    def __init__(self, cfg: PredictorConfig, dim: int) -> None:
        super().__init__(cfg, dim)
        self.linear = nn.Linear(dim, dim, bias=cfg.bias)
        self.symmetrize = cfg.symmetrize
        if self.symmetrize:
            self._symmetrize()

    @torch.no_grad()
    def _symmetrize(self) -> None:
        W = self.linear.weight
        W.copy_((W + W.T) / 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)

    def after_optimizer_step(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        if self.symmetrize:
            self._symmetrize()

    def weight_matrix(self) -> torch.Tensor:
        return self.linear.weight.detach().clone()


class _SetPredictor(Predictor):
    """Bias-free linear predictor overwritten every ``every`` optimiser steps by ``compute_weight()``
    and trained by SGD in between (module docstring: setting schedule)."""

    def __init__(self, cfg: PredictorConfig, dim: int, every: int) -> None:
        super().__init__(cfg, dim)
        self.linear = nn.Linear(dim, dim, bias=False)
        self.every = int(every)
        self.reset_momentum = cfg.reset_momentum
        if self.every == 1:  # a pure function of F: no gradient step would survive the next setting
            self.linear.weight.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)

    def weight_matrix(self) -> torch.Tensor:
        return self.linear.weight.detach().clone()

    def compute_weight(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def after_optimizer_step(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Overwrite the weight when ``step % every == 0`` (``step`` counts from 1)."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"step: must be an integer >= 1 (optimiser steps count from 1), got {step!r}")
        if step % self.every:
            return
        if not self._has_observed():
            raise RuntimeError(f"{type(self).__name__}: observe() was never called before the setting at step {step}")
        if self.reset_momentum and self.linear.weight.requires_grad and optimizer is None:
            raise ValueError("optimizer: must be passed to after_optimizer_step when predictor.reset_momentum is true")
        with torch.autocast(device_type=self.F.device.type, enabled=False):
            self.linear.weight.copy_(self.compute_weight())
        if self.reset_momentum and optimizer is not None:
            buf = optimizer.state.get(self.linear.weight, {}).get("momentum_buffer")
            if buf is not None:
                buf.zero_()


#: ``predictor.name`` -> the rule ``F -> Wp`` of a spectral set predictor, built from its config.
SPECTRAL_RULES: dict[str, Callable[[PredictorConfig], Callable[[torch.Tensor], torch.Tensor]]] = {
    "directpred": lambda c: partial(directpred_weight, alpha=c.alpha, eps=c.eps, floor=c.floor, cj=c.cj),
    "directcopy": lambda c: partial(directcopy_weight, eps_copy=c.eps_copy),
}


class _SpectralSetPredictor(_SetPredictor):
    """A set predictor computed from ``F`` by its :data:`SPECTRAL_RULES` rule, block by block over
    ``feature_blocks`` random blocks."""

    def __init__(self, cfg: PredictorConfig, dim: int) -> None:
        super().__init__(cfg, dim, cfg.freq)
        self.blocks = feature_blocks(dim, cfg.feature_blocks, cfg.block_seed)
        self.block_weight = SPECTRAL_RULES[cfg.name](cfg)

    def compute_weight(self) -> torch.Tensor:
        return blockwise(self.F, self.blocks, self.block_weight)


class DirectPredPredictor(_SpectralSetPredictor):
    """DirectPred / DirectSet(alpha): ``Wp = U diag(p) U^T`` from the eigen-decomposition of ``F``."""


class DirectCopyPredictor(_SpectralSetPredictor):
    """DirectCopy: ``Wp = F / ||F||_2 + eps_copy I`` (no eigen-decomposition)."""


class PartitionedPredictor(Predictor):
    """The paper's partitioned DirectPred (module docstring): ``k`` hyperplanes, a running
    correlation and a weight per side, predictions averaged over the ``k`` sides a sample is on.
    The weights follow DirectPred's or DirectCopy's rule (:data:`SPECTRAL_RULES`)."""

    def __init__(self, cfg: PredictorConfig, dim: int) -> None:
        super().__init__(cfg, dim)
        k = cfg.partitions
        self.rule = SPECTRAL_RULES[cfg.name](cfg)
        g = torch.Generator().manual_seed(cfg.partition_seed)
        self.register_buffer("planes", torch.randn(dim, k, generator=g))
        for side in ("pos", "neg"):
            self.register_buffer(f"F_{side}", torch.zeros(k, dim, dim))
            self.register_buffer(f"n_{side}", torch.zeros(k, dtype=torch.long))
            self.register_buffer(f"W_{side}", self.rule(torch.zeros(k, dim, dim)))

    def _sides(self, z: torch.Tensor) -> torch.Tensor:
        return hyperplane_sides(z.detach().to(self.planes.dtype), self.planes)

    @torch.no_grad()
    def _update(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Correlations of both sides of every hyperplane from this step's views (each side
        initialised by the first batch that reaches it, left alone when none does), then the
        weights. Returns each view's sides."""
        with torch.autocast(device_type=self.F.device.type, enabled=False):
            sides = [self._sides(z) for z in views]
            f = torch.cat([z.detach() for z in views]).to(self.F.dtype)
            m_pos, m_neg, c_pos, c_neg = side_moments(f, torch.cat(sides))
            for F_side, n_side, W_side, m, c in ((self.F_pos, self.n_pos, self.W_pos, m_pos, c_pos),
                                                 (self.F_neg, self.n_neg, self.W_neg, m_neg, c_neg)):
                new = running_update(F_side, m, self.rho, (n_side == 0)[:, None, None])
                F_side.copy_(torch.where((c > 0)[:, None, None], new, F_side))
                n_side += (c > 0).long()
                W_side.copy_(self.rule(F_side))
        return sides

    def predict_views(self, z1: torch.Tensor, z2: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.training:
            return super().predict_views(z1, z2)
        views = [z1] if z2 is None else [z1, z2]
        sides = self._update(views)
        preds = [partitioned_predict(z, s, self.W_pos, self.W_neg) for z, s in zip(views, sides)]
        return preds[0], (preds[1] if z2 is not None else None)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Prediction with the stored weights (sides from ``z``'s own batch mean)."""
        return partitioned_predict(z, self._sides(z), self.W_pos, self.W_neg)


class OptimalPredictor(_SetPredictor):
    """Regularised least-squares predictor ``Wp = C_tf (C_ff + reg I)^{-1}`` (paper's Table 1)."""

    def __init__(self, cfg: PredictorConfig, dim: int) -> None:
        super().__init__(cfg, dim, cfg.optimal_every)
        self.reg = float(cfg.optimal_reg)
        self.register_buffer("C_tf", torch.zeros(self.dim, self.dim))

    @torch.no_grad()
    def observe(self, z_online: torch.Tensor, z_target: torch.Tensor) -> None:
        """Update ``C_ff = F`` and ``C_tf = E[z_t f^T]`` over (online 1, target 2), (online 2, target 1)."""
        self._check_views("z_target", z_target)
        if z_target.shape != z_online.shape:
            raise ValueError(f"z_target: expected the shape of z_online {tuple(z_online.shape)}, got {tuple(z_target.shape)}")
        first = self.n_observed == 0
        super().observe(z_online, z_target)
        with torch.autocast(device_type=z_online.device.type, enabled=False):
            f = z_online.detach().reshape(-1, self.dim).to(self.C_tf.dtype)
            zt = z_target.detach().flip(0).reshape(-1, self.dim).to(self.C_tf.dtype)  # [target 2, target 1]
            self.C_tf.copy_(running_update(self.C_tf, batch_moment(zt, f), self.rho, first))

    def compute_weight(self) -> torch.Tensor:
        return optimal_weight(self.F, self.C_tf, self.reg)

    def cross_correlation(self) -> torch.Tensor | None:
        """A copy of the running ``C_tf`` (float32), or None before the first ``observe``."""
        return self.C_tf.clone() if int(self.n_observed) > 0 else None


PREDICTORS: dict[str, type[Predictor]] = {
    "mlp": MLPPredictor,
    "linear": LinearPredictor,
    "directpred": DirectPredPredictor,
    "directcopy": DirectCopyPredictor,
    "optimal": OptimalPredictor,
    "identity": IdentityPredictor,
}


def build_predictor(cfg: PredictorConfig, dim: int) -> Predictor:
    """Validate ``cfg`` and build ``PREDICTORS[cfg.name]`` for projector width ``dim``."""
    cfg.validate()
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim: must be an integer >= 1, got {dim!r}")
    if cfg.feature_blocks > dim:
        raise ValueError(f"predictor.feature_blocks: must lie in [1, d={dim}], got {cfg.feature_blocks}")
    if cfg.partitions > 1:
        return PartitionedPredictor(cfg, dim)
    return PREDICTORS[cfg.name](cfg, dim)


def predictor_param_groups(predictor: Predictor, cfg: PredictorConfig, base_lr: float,
                           base_wd: float) -> list[dict]:
    """The optimiser group of the predictor's trainable parameters: lr ``alpha_p * base_lr``
    (``alpha_p = cfg.lr_ratio``), weight decay ``cfg.weight_decay`` (None: ``base_wd``).
    Empty when nothing is trainable (identity; directpred/directcopy/optimal setting every step)."""
    params = [p for p in predictor.parameters() if p.requires_grad]
    if not params:
        return []
    wd = base_wd if cfg.weight_decay is None else cfg.weight_decay
    return [{"params": params, "lr": cfg.lr_ratio * base_lr, "weight_decay": wd, "name": "predictor"}]
