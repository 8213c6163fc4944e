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
    from the run's random state, so every seed of a sweep has its own, as in the paper's code; or
    from a generator seeded by ``partition_seed`` when it is set). In a batch ``f`` of one view, sample ``b`` lies on
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
from dataclasses import dataclass
from functools import partial
from typing import Callable

from realnet.methods.predictor_modules import (DirectCopyPredictor, DirectPredPredictor,
                                               IdentityPredictor, LinearPredictor, MLPPredictor,
                                               OptimalPredictor, PartitionedPredictor, Predictor)
from realnet.methods.directset import (batch_moment, blockwise, directcopy_weight,
                                       directpred_weight, directset_spectrum, block_indices,
                                       hyperplane_sides, optimal_weight, partitioned_predict,
                                       running_update, side_moments)
from realnet.config.ranges import check_fields, fail, flag, integer, knob, number, one_of

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
    "PredictorKind",
    "predictor_knobs",
    "build_predictor",
    "predictor_param_groups",
    "batch_moment",
    "running_update",
    "directset_spectrum",
    "directpred_weight",
    "directcopy_weight",
    "optimal_weight",
    "block_indices",
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

    ``name``, ``lr_ratio`` and ``weight_decay`` apply to every predictor. Every other key is a knob
    of some predictors (their :data:`PREDICTORS` entry lists them, and its builder passes each one
    by name to the predictor); it must keep its default when ``name`` is a predictor that does
    not take it, so that a run's config never holds a knob that had no effect.
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
    partition_seed: int | None = knob(None, integer(0, optional=True))  # hyperplanes: none = from the run's seed (the paper's code), or a fixed seed
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

#: Keys that apply to every predictor: the registry key and the optimiser group's lr and wd.
_EVERY_PREDICTOR = ("name", "lr_ratio", "weight_decay")


def predictor_knobs(name: str) -> tuple[str, ...]:
    """The ``predictor.*`` knobs that ``PREDICTORS[name]`` reads."""
    return PREDICTORS[name].knobs




def _directpred(p: PredictorConfig, dim: int) -> Predictor:
    """DirectPred, or its partitioned form when ``predictor.partitions > 1``."""
    if p.partitions > 1:
        rule = partial(directpred_weight, alpha=p.alpha, eps=p.eps, floor=p.floor, cj=p.cj)
        return PartitionedPredictor(dim, rule=rule, rho=p.rho, partitions=p.partitions,
                                    partition_seed=p.partition_seed)
    return DirectPredPredictor(dim, rho=p.rho, alpha=p.alpha, eps=p.eps, floor=p.floor, cj=p.cj,
                               freq=p.freq, feature_blocks=p.feature_blocks, block_seed=p.block_seed,
                               reset_momentum=p.reset_momentum)


def _directcopy(p: PredictorConfig, dim: int) -> Predictor:
    """DirectCopy, or its partitioned form when ``predictor.partitions > 1``."""
    if p.partitions > 1:
        rule = partial(directcopy_weight, eps_copy=p.eps_copy)
        return PartitionedPredictor(dim, rule=rule, rho=p.rho, partitions=p.partitions,
                                    partition_seed=p.partition_seed)
    return DirectCopyPredictor(dim, rho=p.rho, eps_copy=p.eps_copy, freq=p.freq,
                               feature_blocks=p.feature_blocks, block_seed=p.block_seed,
                               reset_momentum=p.reset_momentum)


@dataclass(frozen=True)
class PredictorKind:
    """A registry entry: ``build(predictor_cfg, dim)`` passes each of ``knobs`` (the
    ``predictor.*`` keys it reads) by name to the predictor."""

    build: Callable[[PredictorConfig, int], Predictor]
    knobs: tuple[str, ...]


_SET_KNOBS = ("rho", "freq", "feature_blocks", "block_seed", "partitions", "partition_seed",
              "reset_momentum")

#: ``predictor.name`` -> how to build it and the knobs it reads.
PREDICTORS: dict[str, PredictorKind] = {
    "mlp": PredictorKind(lambda p, d: MLPPredictor(d, rho=p.rho, hidden_dim=p.hidden_dim),
                         ("rho", "hidden_dim")),
    "linear": PredictorKind(lambda p, d: LinearPredictor(d, rho=p.rho, bias=p.bias,
                                                         symmetrize=p.symmetrize),
                            ("rho", "bias", "symmetrize")),
    "directpred": PredictorKind(_directpred, _SET_KNOBS + ("alpha", "eps", "floor", "cj")),
    "directcopy": PredictorKind(_directcopy, _SET_KNOBS + ("eps_copy",)),
    "optimal": PredictorKind(lambda p, d: OptimalPredictor(d, rho=p.rho, optimal_every=p.optimal_every,
                                                           optimal_reg=p.optimal_reg,
                                                           reset_momentum=p.reset_momentum),
                             ("rho", "optimal_every", "optimal_reg", "reset_momentum")),
    "identity": PredictorKind(lambda p, d: IdentityPredictor(d, rho=p.rho), ("rho",)),
}


def build_predictor(cfg: PredictorConfig, dim: int) -> Predictor:
    """``PREDICTORS[cfg.name]`` for projector width ``dim`` (``cfg`` was validated when its
    config was loaded; :meth:`realnet.config.train_config.TrainConfig.validate` checks
    ``feature_blocks`` against the projector width)."""
    return PREDICTORS[cfg.name].build(cfg, dim)


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
