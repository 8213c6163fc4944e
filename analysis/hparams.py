"""From a real run's optimiser settings to the theory's hyperparameters (THEORY.md section 1).

Input: the resolved config of a run (the plain ``config.json`` dict a run folder holds; this
module reads it as data and does not import the trainer). Output: :class:`TheoryHParams`.

Discrete SGD with online learning rate ``a`` (THEORY section 1): predictor lr ``a alpha_p``, EMA
momentum ``gamma_a = 1 - a beta``, weight decay ``a eta``; ODE time ``t = step * a``. A run's
optimiser differs from that plain scheme in two ways, each a factor on ``a``:

``momentum`` (heavy ball, ``v <- m v + g + wd w``, ``w <- w - lr v``)
    When the gradient changes little over ``1/(1 - m)`` steps (the continuous limit) the buffer
    is ``v = (g + wd w)/(1 - m)``: the effective step is ``lr / (1 - m)`` (10x for ``m = 0.9``),
    on the gradient and the (coupled) weight decay alike. The EMA update, applied once per step
    outside the optimiser, is not amplified. So ``alpha_p`` and ``eta`` are unaffected, but the
    EMA rate relative to the online rate is ``beta = (1 - gamma_a)(1 - m) / lr``, 10x smaller
    than ``(1 - gamma_a)/lr``, and the time per step 10x larger.
``method.symmetric`` (loss summed over both view orders)
    Its expected gradient is twice that of Eqn 1's single ordered pair.
``method.loss`` (the scale of one pair's loss, :data:`LOSS_SCALE`)
    The real runs' loss per pair is BYOL's ``2 - 2 cos = ||p^ - z^||^2``, twice Eqn 1's
    ``1/2 ||p - z||^2`` written on the normalised vectors; the ``l2`` option is Eqn 1 itself.

So in the theory's units ``a = scale * terms * lr / (1 - m)`` (``2 * 2 * 10 = 40`` times ``lr`` at
the recipe's cosine loss, two pairs and momentum 0.9) and the weight decay, not scaled with the
loss, is ``eta = wd / (scale * terms)``.

Conventions (:data:`CONVENTIONS`): ``"continuous"`` (default, used for predictions) applies every
factor; ``"paper"`` applies neither (``a = lr``, ``eta = wd``, ``beta = (1 - gamma_a)/lr``; BYOL's
0.996 at lr 0.03 gives ``beta = 0.1333``), as THEORY section 1 states it. The fixed points used by
the predictions (``p*_+-``, ``eta_c``, Eqn 16) depend on ``eta`` and ``tau`` only; ``tau = 1`` at
any EMA fixed point (Eqn 13 with ``ds/dt = 0``), so ``beta`` and the time unit affect transients
only, and between the two conventions only the factor ``scale * terms`` of ``eta`` matters there.

Not covered exactly: LARS (its trust ratio rescales each layer's step; ``a`` is then not a
constant, a note is added), lr schedules other than constant (the time ``t`` is then the sum of
the logged learning rates, :func:`time_of_steps`), and BYOL's cosine EMA schedule (``beta`` is
given for the first step; a note is added).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from dynamics.directset import LOSS_SCALE

from .errors import ConfigError
from .runconfig import RunConfig, as_run_config

__all__ = ["TheoryHParams", "CONVENTIONS", "LOSS_SCALE", "map_hparams", "time_of_steps"]


#: ``name -> (apply the momentum factor 1/(1-m), count the symmetrised loss as 2 terms and the
#: loss scale)``.
CONVENTIONS: dict[str, tuple[bool, bool]] = {
    "continuous": (True, True),
    "paper": (False, False),
}


@dataclass(frozen=True)
class TheoryHParams:
    """Theory hyperparameters of a run. ``a``: ODE time per optimiser step (at the base lr);
    ``alpha_p``: relative predictor lr; ``eta`` / ``eta_p``: weight decay of the online network /
    the predictor per unit time; ``beta``: EMA rate (None for SimSiam, whose ``tau = 1``);
    ``gamma_a``: the EMA momentum; ``loss_terms``: 2 for a symmetrised loss counted as two terms;
    ``loss_scale``: :data:`LOSS_SCALE` of the run's loss (1 in the paper convention);
    ``momentum_factor``: ``1/(1 - m)`` or 1; ``notes``: where the mapping is approximate."""

    convention: str
    a: float
    alpha_p: float
    eta: float
    eta_p: float
    beta: float | None
    gamma_a: float | None
    lr: float
    momentum: float
    weight_decay: float
    loss_terms: int
    loss_scale: float
    momentum_factor: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def _number(key: str, v: Any, lo: float, hi: float, *, lo_open: bool = False,
            hi_open: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
    if ok:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ConfigError(f"config: {key}={v!r} is invalid: allowed a number in {lb}{lo}, {hi}{rb}")
    return float(v)


def map_hparams(cfg: RunConfig | Mapping[str, Any], convention: str = "continuous") -> TheoryHParams:
    """Theory hyperparameters of a resolved run config (module docstring for the formulas):

    ``a = lr * loss_scale * loss_terms * momentum_factor``, ``alpha_p = predictor.lr_ratio``,
    ``eta = optim.weight_decay / (loss_scale * loss_terms)``, ``eta_p`` the same with
    ``predictor.weight_decay``
    (the global one when unset), ``beta = (1 - method.ema) / a`` for BYOL, None for SimSiam."""
    if convention not in CONVENTIONS:
        raise ConfigError(f"convention: must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    use_momentum, count_symmetric = CONVENTIONS[convention]
    c = as_run_config(cfg)
    lr = _number("optim.lr", c.optim.lr, 0.0, np.inf, lo_open=True)
    m = _number("optim.momentum", c.optim.momentum, 0.0, 1.0, hi_open=True)
    wd = _number("optim.weight_decay", c.optim.weight_decay, 0.0, np.inf)
    alpha_p = _number("predictor.lr_ratio", c.predictor.lr_ratio, 0.0, np.inf, lo_open=True)
    wd_p = wd if c.predictor.weight_decay is None else _number(
        "predictor.weight_decay", c.predictor.weight_decay, 0.0, np.inf)
    method = c.method.name
    symmetric = c.method.symmetric
    terms = 2 if (symmetric and count_symmetric) else 1
    loss = c.method.loss
    if loss not in LOSS_SCALE:
        raise ConfigError(f"config: method.loss={loss!r} is invalid: allowed {sorted(LOSS_SCALE)}")
    scale = LOSS_SCALE[loss] if count_symmetric else 1.0
    factor = 1.0 / (1.0 - m) if use_momentum else 1.0
    a = lr * scale * terms * factor
    notes: list[str] = []
    beta = gamma = None
    if method == "byol":
        gamma = _number("method.ema", c.method.ema, 0.0, 1.0)
        beta = (1.0 - gamma) / a
        if c.method.ema_schedule != "constant":
            notes.append(f"EMA schedule {c.method.ema_schedule!r}: beta is its value at "
                         "step 0 and decreases to 0 by the end")
    elif method != "simsiam":
        raise ConfigError(f"config: method.name={method!r} is invalid: allowed 'byol' or 'simsiam'")
    if c.optim.name != "sgd":
        notes.append(f"optimiser {c.optim.name!r}: per-layer step rescaling; a is "
                     "nominal")
    if c.optim.schedule != "constant" or c.optim.warmup_steps > 0:
        notes.append("lr schedule: use time_of_steps with the logged learning rates for t")
    if use_momentum and m > 0:
        notes.append(f"momentum {m:g}: continuous limit, effective lr = lr/(1-m) = {lr / (1 - m):g}")
    if symmetric and count_symmetric:
        notes.append("symmetrised loss: 2 terms, a doubled and eta halved")
    if scale != 1.0:
        notes.append(f"loss scale {scale:g} (2 - 2 cos = |p^ - z^|^2 per pair): a x{scale:g}, "
                     f"eta / {scale:g}")
    if loss == "cosine":
        notes.append("cosine loss: eta is relative to a scale-free loss (only its ratio to the "
                     "gradient at the run's output scale matters)")
    return TheoryHParams(convention, a, alpha_p, wd / (scale * terms), wd_p / (scale * terms), beta,
                         gamma, lr, m, wd, terms, scale, factor, tuple(notes))


def time_of_steps(steps: Sequence[int] | np.ndarray, hp: TheoryHParams,
                  lr_log: tuple[Sequence[int], Sequence[float]] | None = None) -> np.ndarray:
    """ODE time at the given optimiser steps: ``t = step * a`` for a constant lr; with
    ``lr_log = (logged_steps, logged_lr)`` (from ``metrics.jsonl``, the lr of the step ending
    there) ``t(step) = (a / lr) * sum_{k < step} lr_k`` with ``lr_k`` piecewise constant between
    log points (exact when the lr changes only at logged steps)."""
    steps = np.asarray(steps, dtype=np.float64)
    if np.any(steps < 0):
        raise ConfigError("steps: must be >= 0")
    if lr_log is None:
        return steps * hp.a
    at, lrs = (np.asarray(v, dtype=np.float64) for v in lr_log)
    if at.size == 0 or at.shape != lrs.shape:
        raise ConfigError("lr_log: expected two equal-length, non-empty sequences")
    order = np.argsort(at)
    at, lrs = at[order], lrs[order]
    # step k (1-based end at[i-1] < k <= at[i]) uses lrs[i]; beyond the last log point, the last lr
    knots = np.concatenate([[0.0], at])
    cum = np.concatenate([[0.0], np.cumsum(np.diff(knots) * lrs)])
    idx = np.clip(np.searchsorted(knots, steps, side="right") - 1, 0, len(lrs) - 1)
    total = cum[idx] + (steps - knots[idx]) * lrs[idx]
    return total * (hp.a / hp.lr)
