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

import dataclasses
import inspect
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from .directset import (batch_moment, blockwise, directcopy_weight, directpred_weight, directset_spectrum,
                        feature_blocks, hyperplane_sides, optimal_weight, partitioned_predict, running_update,
                        side_moments)
from .models import MLP
from .ranges import check_fields, fail, flag, integer, knob, number, one_of

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
    "predictor_knobs",
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

    ``name``, ``rho``, ``lr_ratio`` and ``weight_decay`` apply to every predictor. Every other key
    is a keyword argument of some predictors' constructors (:data:`PREDICTORS`, read from their
    signatures by :func:`predictor_knobs`); it must keep its default when ``name`` is a predictor
    that does not take it, so that a run's config never holds a knob that had no effect.
    """

    name: str = knob("directpred", one_of(lambda: PREDICTORS))  # registry key, see PREDICTORS
    hidden_dim: int = knob(512, integer(1))             # mlp hidden width
    bias: bool = knob(False, flag())                    # linear: add a bias
    symmetrize: bool = knob(False, flag())              # linear: Wp <- (Wp + Wp^T)/2 after every optimiser step
    rho: float = knob(0.3, number(0.0, 1.0, hi_open=True))  # running-correlation decay (all predictors)
    eps: float = knob(0.1, number(0.0))                 # directpred additive eps
    floor: float = knob(1e-4, number(0.0, lo_open=True))  # directpred floor on p_j
    freq: int = knob(1, integer(1))                     # directpred/directcopy: set every freq steps
    cj: float = knob(0.0, number(hi=1.0, hi_open=True))  # directpred c_j ablation (0 = off; < 1 keeps the top mode)
    alpha: float = knob(0.5, number(0.0, lo_open=True))  # DirectSet exponent (0.5 = DirectPred)
    partitions: int = knob(1, integer(1))               # directpred/directcopy: k random hyperplanes (paper's partitioned predictor)
    partition_seed: int = knob(0, integer(0))           # seed of the hyperplanes
    feature_blocks: int = knob(1, integer(1))           # directpred/directcopy: k random blocks of feature dims
    block_seed: int = knob(0, integer(0))               # seed of the feature blocks
    eps_copy: float = knob(0.25, number(0.0))           # directcopy: Wp = F/||F||_2 + eps_copy I
    optimal_every: int = knob(1, integer(1))            # optimal: set every optimal_every steps
    optimal_reg: float = knob(1e-2, number(0.0))        # optimal: ridge coefficient reg
    reset_momentum: bool = knob(False, flag())          # set predictors: zero the weight's momentum buffer at a setting
    lr_ratio: float = knob(1.0, number(0.0, lo_open=True))  # alpha_p: predictor lr = lr_ratio * lr
    weight_decay: float | None = knob(None, number(0.0, optional=True))  # predictor-only weight decay; None = the global one

    def validate(self) -> None:
        """ValueError naming ``predictor.<key>`` and the allowed values for any invalid value."""
        check_fields(self, "predictor.")
        if self.partitions > 1 and self.feature_blocks > 1:
            fail("predictor.feature_blocks", self.feature_blocks, "1 when predictor.partitions > 1 (one or the other)")
        if self.partitions > 1 and self.freq != 1:
            fail("predictor.freq", self.freq, "1 when predictor.partitions > 1 (the partitioned predictor sets "
                 "its weights at every step, as the paper's code)")
        takes = predictor_knobs(self.name)
        for f in dataclasses.fields(self):
            if f.name not in _EVERY_PREDICTOR and f.name not in takes and getattr(self, f.name) != f.default:
                users = sorted(n for n in PREDICTORS if f.name in predictor_knobs(n))
                fail(f"predictor.{f.name}", getattr(self, f.name),
                     f"only its default {f.default!r} with predictor.name={self.name!r} (a knob of "
                     f"{', '.join(users)})")

    def knobs(self) -> dict[str, Any]:
        """The keyword arguments of this config's predictor (``dim`` aside)."""
        return {k: getattr(self, k) for k in predictor_knobs(self.name)}


#: Keys that apply to every predictor: the registry key and the optimiser group's lr and wd.
_EVERY_PREDICTOR = ("name", "lr_ratio", "weight_decay")


def predictor_knobs(name: str) -> tuple[str, ...]:
    """The keyword-only arguments of ``PREDICTORS[name]`` (its config knobs)."""
    params = inspect.signature(PREDICTORS[name]).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


_blocks_of = feature_blocks  # for the constructors, whose knob of that name shadows it


# ---------------------------------------------------------------------------------------------
# predictors
# ---------------------------------------------------------------------------------------------
class Predictor(nn.Module):
    """Base: keeps the running correlation ``F`` of the online projector outputs (module docstring)."""

    def __init__(self, dim: int, *, rho: float) -> None:
        super().__init__()
        self.dim = int(dim)
        self.rho = float(rho)
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

    def __init__(self, dim: int, *, rho: float, hidden_dim: int) -> None:
        super().__init__(dim, rho=rho)
        self.mlp = MLP(dim, hidden_dim, dim)

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

    def __init__(self, dim: int, *, rho: float, bias: bool, symmetrize: bool) -> None:
        super().__init__(dim, rho=rho)
        self.linear = nn.Linear(dim, dim, bias=bias)
        self.symmetrize = symmetrize
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

    def __init__(self, dim: int, *, rho: float, every: int, reset_momentum: bool) -> None:
        super().__init__(dim, rho=rho)
        self.linear = nn.Linear(dim, dim, bias=False)
        self.every = int(every)
        self.reset_momentum = reset_momentum
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


class _SpectralSetPredictor(_SetPredictor):
    """A set predictor computed from ``F`` by a spectral rule ``F -> Wp``, block by block over
    ``feature_blocks`` random blocks (one block: the whole ``F``)."""

    def __init__(self, dim: int, *, rule: Callable[[torch.Tensor], torch.Tensor], rho: float, freq: int,
                 feature_blocks: int, block_seed: int, reset_momentum: bool) -> None:
        super().__init__(dim, rho=rho, every=freq, reset_momentum=reset_momentum)
        self.blocks = _blocks_of(dim, feature_blocks, block_seed)
        self.block_weight = rule

    def compute_weight(self) -> torch.Tensor:
        return blockwise(self.F, self.blocks, self.block_weight)


class DirectPredPredictor(_SpectralSetPredictor):
    """DirectPred / DirectSet(alpha): ``Wp = U diag(p) U^T`` from the eigen-decomposition of ``F``."""

    def __init__(self, dim: int, *, rho: float, alpha: float, eps: float, floor: float, cj: float,
                 freq: int, feature_blocks: int, block_seed: int, reset_momentum: bool) -> None:
        super().__init__(dim, rule=partial(directpred_weight, alpha=alpha, eps=eps, floor=floor, cj=cj),
                         rho=rho, freq=freq, feature_blocks=feature_blocks, block_seed=block_seed,
                         reset_momentum=reset_momentum)


class DirectCopyPredictor(_SpectralSetPredictor):
    """DirectCopy: ``Wp = F / ||F||_2 + eps_copy I`` (no eigen-decomposition)."""

    def __init__(self, dim: int, *, rho: float, eps_copy: float, freq: int, feature_blocks: int,
                 block_seed: int, reset_momentum: bool) -> None:
        super().__init__(dim, rule=partial(directcopy_weight, eps_copy=eps_copy), rho=rho, freq=freq,
                         feature_blocks=feature_blocks, block_seed=block_seed, reset_momentum=reset_momentum)


class PartitionedPredictor(Predictor):
    """The paper's partitioned DirectPred (module docstring): ``k`` hyperplanes, a running
    correlation and a weight per side, predictions averaged over the ``k`` sides a sample is on.
    The weights follow a spectral rule ``F -> W`` (DirectPred's or DirectCopy's)."""

    def __init__(self, dim: int, *, rule: Callable[[torch.Tensor], torch.Tensor], rho: float,
                 partitions: int, partition_seed: int) -> None:
        super().__init__(dim, rho=rho)
        k = partitions
        self.rule = rule
        g = torch.Generator().manual_seed(partition_seed)
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

    def __init__(self, dim: int, *, rho: float, optimal_every: int, optimal_reg: float,
                 reset_momentum: bool) -> None:
        super().__init__(dim, rho=rho, every=optimal_every, reset_momentum=reset_momentum)
        self.reg = float(optimal_reg)
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


def _directpred(dim: int, *, rho: float, alpha: float, eps: float, floor: float, cj: float, freq: int,
                feature_blocks: int, block_seed: int, partitions: int, partition_seed: int,
                reset_momentum: bool) -> Predictor:
    """DirectPred, or its partitioned form when ``partitions > 1``."""
    if partitions > 1:
        rule = partial(directpred_weight, alpha=alpha, eps=eps, floor=floor, cj=cj)
        return PartitionedPredictor(dim, rule=rule, rho=rho, partitions=partitions, partition_seed=partition_seed)
    return DirectPredPredictor(dim, rho=rho, alpha=alpha, eps=eps, floor=floor, cj=cj, freq=freq,
                               feature_blocks=feature_blocks, block_seed=block_seed, reset_momentum=reset_momentum)


def _directcopy(dim: int, *, rho: float, eps_copy: float, freq: int, feature_blocks: int, block_seed: int,
                partitions: int, partition_seed: int, reset_momentum: bool) -> Predictor:
    """DirectCopy, or its partitioned form when ``partitions > 1``."""
    if partitions > 1:
        rule = partial(directcopy_weight, eps_copy=eps_copy)
        return PartitionedPredictor(dim, rule=rule, rho=rho, partitions=partitions, partition_seed=partition_seed)
    return DirectCopyPredictor(dim, rho=rho, eps_copy=eps_copy, freq=freq, feature_blocks=feature_blocks,
                               block_seed=block_seed, reset_momentum=reset_momentum)


#: ``predictor.name`` -> the constructor; its keyword-only arguments are the predictor's knobs.
PREDICTORS: dict[str, Callable[..., Predictor]] = {
    "mlp": MLPPredictor,
    "linear": LinearPredictor,
    "directpred": _directpred,
    "directcopy": _directcopy,
    "optimal": OptimalPredictor,
    "identity": IdentityPredictor,
}


def build_predictor(cfg: PredictorConfig, dim: int) -> Predictor:
    """Validate ``cfg`` and build ``PREDICTORS[cfg.name]`` for projector width ``dim`` with the
    knobs it takes."""
    cfg.validate()
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        fail("dim", dim, "an integer >= 1")
    if cfg.feature_blocks > dim:
        fail("predictor.feature_blocks", cfg.feature_blocks, f"an integer in [1, d={dim}]")
    return PREDICTORS[cfg.name](dim, **cfg.knobs())


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
