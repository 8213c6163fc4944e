"""The predictor modules (:class:`Predictor` and its kinds); :mod:`realnet.methods.predictors`
describes each, holds their config section and registry, and builds them."""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from realnet.methods.directset import (batch_moment, block_indices, blockwise, directcopy_weight,
                                       directpred_weight, hyperplane_sides, optimal_weight,
                                       partitioned_predict, running_update, side_moments)
from realnet.nets.resnet import MLP

__all__ = ["Predictor", "MLPPredictor", "IdentityPredictor", "LinearPredictor", "DirectPredPredictor",
           "DirectCopyPredictor", "PartitionedPredictor", "OptimalPredictor"]


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
    """Bias-free linear predictor overwritten every ``freq`` optimiser steps by ``compute_weight()``
    and trained by SGD in between (module docstring: setting schedule)."""

    def __init__(self, dim: int, *, rho: float, freq: int, reset_momentum: bool) -> None:
        super().__init__(dim, rho=rho)
        self.linear = nn.Linear(dim, dim, bias=False)
        self.freq = int(freq)
        self.reset_momentum = reset_momentum
        if self.freq == 1:  # a pure function of F: no gradient step would survive the next setting
            self.linear.weight.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)

    def weight_matrix(self) -> torch.Tensor:
        return self.linear.weight.detach().clone()

    def compute_weight(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def after_optimizer_step(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Overwrite the weight when ``step % freq == 0`` (``step`` counts from 1)."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"step: must be an integer >= 1 (optimiser steps count from 1), got {step!r}")
        if step % self.freq:
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
        super().__init__(dim, rho=rho, freq=freq, reset_momentum=reset_momentum)
        self.blocks = block_indices(dim, feature_blocks, block_seed)
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


def _global_rows(z: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(rows of every rank in rank order, where this rank's rows start)``; ``(z, 0)`` in one
    process. Each rank holds the same number of rows (the global batch is split evenly)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z, 0
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.contiguous())
    return torch.cat(parts), dist.get_rank() * z.shape[0]


class PartitionedPredictor(Predictor):
    """The paper's partitioned DirectPred (module docstring): ``k`` hyperplanes, a running
    correlation and a weight per side, predictions averaged over the ``k`` sides a sample is on.
    The weights follow a spectral rule ``F -> W`` (DirectPred's or DirectCopy's)."""

    def __init__(self, dim: int, *, rule: Callable[[torch.Tensor], torch.Tensor], rho: float,
                 partitions: int, partition_seed: int | None) -> None:
        super().__init__(dim, rho=rho)
        k = partitions
        self.rule = rule
        # None: drawn from the run's RNG (torch's global generator, which the model build seeds
        # with the run's seed), as the paper's code does; an integer: a generator of its own
        g = None if partition_seed is None else torch.Generator().manual_seed(partition_seed)
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
        weights. Returns each view's sides. Under torchrun the sides, their means and moments
        are the global batch's (every rank's views gathered in rank order, as one process would
        see them); each rank gets its own rows' sides back."""
        with torch.autocast(device_type=self.F.device.type, enabled=False):
            gathered = [_global_rows(z.detach()) for z in views]
            sides = [self._sides(g) for g, _ in gathered]
            f = torch.cat([g for g, _ in gathered]).to(self.F.dtype)
            m_pos, m_neg, c_pos, c_neg = side_moments(f, torch.cat(sides))
            for F_side, n_side, W_side, m, c in ((self.F_pos, self.n_pos, self.W_pos, m_pos, c_pos),
                                                 (self.F_neg, self.n_neg, self.W_neg, m_neg, c_neg)):
                new = running_update(F_side, m, self.rho, (n_side == 0)[:, None, None])
                F_side.copy_(torch.where((c > 0)[:, None, None], new, F_side))
                n_side += (c > 0).long()
                W_side.copy_(self.rule(F_side))
        return [s[start:start + z.shape[0]] for s, (_, start), z in zip(sides, gathered, views)]

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
        super().__init__(dim, rho=rho, freq=optimal_every, reset_momentum=reset_momentum)
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


