"""What the theory predicts, mode by mode, for a real run; and what the run measured.

Modes are the eigenvectors ``u_j`` of the run's ``F`` at the final snapshot (descending ``s_j``);
prediction and measurement refer to the same directions.

Measured (:func:`measure_modes`, from one spectra snapshot):

- ``s_j``: eigenvalues of ``F`` (the predictor's running correlation of the online outputs of both
  views, or the probe's same-view correlation);
- ``sigma2_j = (u_j^T C_same u_j - u_j^T C_cross u_j) / u_j^T C_cross u_j``
  (:func:`analysis.metrics.augmentation_sigma2`): in the linear model ``C_same = W (X + X') W^T``
  and ``C_cross = W X W^T``, so per direction this is the ratio of augmentation variance to
  view-invariant variance, the ``sigma2`` of A2 seen along ``u_j``;
- ``p_j = u_j^T Wp u_j`` and the alignment ``cos(Wp u_j, u_j)`` (linear predictors);
- fate: mode ``j`` survives iff ``s_j > tol * s_max`` (the shared rule of
  :func:`analysis.metrics.collapsed_mask`) and the spectrum as a whole has not collapsed,
  ``s_max > tol * s_max(first snapshot)``.

Predicted (:data:`THEORIES`, by ``predictor.name``; the fixed points, t -> infinity, with the
measured final ``sigma2_j``, ``tau = 1`` which is the EMA's fixed point, and ``eta`` from
:mod:`analysis.hparams`):

``linear`` (trained by SGD) -- L2 theory, Eqns 11-16
    ``p_j = p*_+ = [1 + sqrt(1 - 4 eta (1+sigma2_j))] / (2 (1+sigma2_j))`` (Eqn 16); the mode
    collapses iff ``eta > eta_c = 1/(4 (1+sigma2_j))``. Shape of the spectrum on the parabola
    (Eqn 14 after weight decay has removed ``c_j``): ``s_j / s_max = (p_j / p_max)^2``. Alignment
    1 (Theorem 3). The basin rule ``p_j(0) < p*_-`` is not applied: the deep network's
    ``(p_j(0), s_j(0))`` have no scale relative to the parabola. With the cosine loss the
    absolute scale of ``Wp`` is free (the loss is scale-free in ``Wp``; the mean-field cosine
    fixed point ``Wp W = W X (X+X')^{-1}`` up to a factor has the same shape), so compare
    ``p_j / p_max`` as well.
``directpred`` / ``directcopy`` (set predictors) -- cosine loss: :mod:`dynamics.cosine`
    Survivors obey ``(1+sigma2_j) p_j = kappa``, ``kappa = (1+sigma2_min)(1+eps)``; mode ``j``
    collapses iff ``(1+sigma2_j) max(eps, floor) >= kappa``; ``s_j/s_max = (kappa/(1+sigma2_j) -
    eps)^(1/alpha)`` (``alpha = 1`` and ``eps = eps_copy`` for DirectCopy). Alignment 1 (by
    construction). With the L2 loss: every mode collapses (the top ``p = 1+eps`` exceeds
    ``1/(1+sigma2)``, :func:`dynamics.cosine.l2_directset_rate`).

Other predictors (two-layer MLP, identity, optimal) get no mode-level prediction.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from dynamics.cosine import cosine_fixed_point, l2_directset_rate
from dynamics.exact import fixed_point_branches
from dynamics.sgd import DirectPredConfig

from . import metrics
from .hparams import TheoryHParams
from .runconfig import RunConfig, as_run_config

__all__ = ["MeasuredModes", "measure_modes", "ModePrediction", "THEORIES", "predict_modes",
           "directset_config"]


@dataclass
class MeasuredModes:
    """Quantities of one snapshot along the eigenvectors ``U`` of its ``F`` (descending)."""

    step: int
    s: np.ndarray
    U: np.ndarray
    sigma2: np.ndarray
    survives: np.ndarray
    cross: np.ndarray
    p: np.ndarray | None = None
    alignment: np.ndarray | None = None

    @property
    def s_rel(self) -> np.ndarray:
        """``s_j / s_max`` of ``F``."""
        return _rel(self.s)

    @property
    def cross_rel(self) -> np.ndarray:
        """``u_j^T C_cross u_j`` over its maximum (the theory's ``F = W X W^T`` along ``u_j``)."""
        return _rel(self.cross)


def _rel(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, None)
    top = v.max() if v.size and v.max() > 0 else 1.0
    return v / top


def measure_modes(snap: Mapping[str, Any], *, tol: float = metrics.COLLAPSE_REL_TOL,
                  reference_smax: float | None = None, U: np.ndarray | None = None) -> MeasuredModes:
    """Measured per-mode quantities of a snapshot (module docstring). ``reference_smax``: the
    first snapshot's ``s_max`` (total-collapse check). ``U``: measure along these directions
    instead of the snapshot's own eigenvectors (``s`` then holds ``u_j^T F u_j`` and the alignment
    is not computed)."""
    if "F" not in snap:
        raise ValueError("snapshot: has no matrix F (the run was logged with "
                         "log.save_matrices=false); per-mode comparison needs it")
    F = np.asarray(snap["F"], dtype=np.float64)
    own_basis = U is None
    if own_basis:
        s, U = metrics.eigh_desc(F)
    else:
        s = metrics.project_on_modes(F, U)
    if "C_same" in snap and "C_cross" in snap:
        same = metrics.project_on_modes(snap["C_same"], U)
        cross = metrics.project_on_modes(snap["C_cross"], U)
    else:
        same, cross = np.asarray(snap["same_on_F"]), np.asarray(snap["cross_on_F"])
    sigma2 = metrics.augmentation_sigma2(same, cross)
    survives = ~metrics.collapsed_mask(s, rel_tol=tol)
    if reference_smax is not None and s.max() <= tol * reference_smax:
        survives[:] = False
    p = align = None
    if "Wp" in snap:
        Wp = np.asarray(snap["Wp"], dtype=np.float64)
        p = metrics.project_on_modes(Wp, U)
        align = metrics.alignment(F, Wp) if own_basis else None
    return MeasuredModes(int(snap.get("step", -1)), s, U, sigma2, survives, cross, p, align)


@dataclass
class ModePrediction:
    """Predicted fixed point per mode (NaN where the theory says nothing): ``survives``,
    ``p``, ``s_rel = s_j / s_max``, ``alignment``; ``theory`` and ``equations`` name what was
    used; ``notes`` list the approximations; ``scale_free_p``: compare ``p / p_max`` too;
    ``s_kind``: what ``s_rel`` is relative to, ``"F"`` (the eigenvalues of the run's ``F``, the
    correlation of both views' outputs) or ``"cross"`` (the cross-view moment, the theory's
    ``W X W^T``)."""

    theory: str
    equations: str
    survives: np.ndarray
    p: np.ndarray
    s_rel: np.ndarray
    alignment: np.ndarray
    notes: list[str] = field(default_factory=list)
    scale_free_p: bool = False
    s_kind: str = "F"
    extra: dict[str, Any] = field(default_factory=dict)


def _usable_sigma2(measured: MeasuredModes) -> tuple[np.ndarray, np.ndarray]:
    """``(ok, sigma2)``: modes with a positive cross-view moment, and their ``sigma2`` clipped at
    0 (``same >= cross`` holds in expectation by Cauchy-Schwarz; a slightly negative estimate is
    sampling noise). Modes without cross-view signal get ``sigma2 = 0`` and ``ok = False``."""
    sigma2 = measured.sigma2
    ok = np.isfinite(sigma2)
    return ok, np.where(ok, np.clip(np.nan_to_num(sigma2), 0.0, None), 0.0)


def _linear_l2(measured: MeasuredModes, hp: TheoryHParams, cfg: RunConfig) -> ModePrediction:
    """L2 theory of a trained linear predictor (Eqns 11-16), tau = 1."""
    ok, sigma2 = _usable_sigma2(measured)
    lam = 1.0 + sigma2
    eta_c = 1.0 / (4.0 * lam)
    _, p_plus = fixed_point_branches(1.0, hp.eta, sigma2)
    survives = ok & (hp.eta <= eta_c)
    p = np.where(survives, p_plus, np.nan)
    p_top = np.nanmax(p) if survives.any() else np.nan
    if hp.eta > 0:
        s_rel = np.where(survives, (p / p_top) ** 2, 0.0)
    else:
        s_rel = np.where(survives, np.nan, 0.0)
    notes = [f"tau = 1 (EMA fixed point); eta = {hp.eta:.3g} ({hp.convention} convention)"]
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} modes without positive cross-view variance "
                     "(sigma2 undefined): predicted collapsed")
    if hp.eta_p != hp.eta:
        notes.append("predictor weight decay differs from the online one: s_rel uses "
                     "s = eta_p p^2 / (alpha_p eta), same shape")
    scale_free = cfg.method.loss == "cosine"
    if scale_free:
        notes.append("cosine loss: the scale of Wp is free; compare p / p_max as well")
    return ModePrediction("linear-l2", "Eqns 11-16 (p*_+ of Eqn 16, eta_c, parabola of Eqn 14), "
                          "Theorem 3", survives, p, s_rel, np.where(survives, 1.0, np.nan), notes,
                          scale_free, "cross", {"eta_c": eta_c})


def directset_config(cfg: RunConfig | Mapping[str, Any]) -> DirectPredConfig:
    """The DirectSet(alpha) settings of a run's predictor (DirectCopy: alpha = 1,
    eps = eps_copy, no floor beyond 1e-12), with its c_j (Table 7's form) for DirectPred."""
    pc = as_run_config(cfg).predictor
    if pc.name == "directcopy":
        return DirectPredConfig(freq=pc.freq, rho=pc.rho, eps=pc.eps_copy, floor=1e-12, alpha=1.0)
    return DirectPredConfig(freq=pc.freq, rho=pc.rho, eps=pc.eps, floor=pc.floor, alpha=pc.alpha,
                            cj=pc.cj)


def _directset(measured: MeasuredModes, hp: TheoryHParams, cfg: RunConfig) -> ModePrediction:
    """Cosine-loss theory of a set predictor (dynamics.cosine), or the L2 collapse."""
    dp = dataclasses.replace(directset_config(cfg), cj=0.0)  # the closed forms below are eps-form only
    pc = cfg.predictor
    notes = [f"DirectSet alpha = {dp.alpha:g}, eps = {dp.eps:g}, floor = {dp.floor:g}"]
    if pc.cj != 0.0:
        notes.append("c_j ablation (p = sqrt(s/s_max - c_j)) is not covered: prediction uses cj = 0")
    if pc.freq > 1:
        notes.append("freq > 1: the predictor trains by SGD between settings; not modelled")
    if pc.partitions > 1:
        notes.append("partitions > 1: piecewise-linear (hyperplane-partitioned) predictor; not modelled")
    if pc.feature_blocks > 1:
        notes.append("feature_blocks > 1: block-diagonal predictor; not modelled")
    ok, sigma2 = _usable_sigma2(measured)
    d = sigma2.size
    if cfg.method.loss == "l2":
        rate = l2_directset_rate(sigma2=float(np.median(sigma2[ok])) if ok.any() else 0.0,
                                 eps=dp.eps, eta=hp.eta)
        notes.append(f"L2 loss: total collapse predicted, late rate of log s = {rate:.3g} per unit "
                     "time at the median sigma2")
        return ModePrediction("directset-l2", "Eqn 12 with the set predictor (dynamics.cosine, "
                              "l2_mode_rhs / l2_directset_rate)", np.zeros(d, bool),
                              np.full(d, 1.0 + dp.eps), np.ones(d), np.ones(d), notes)
    if not ok.any():
        raise ValueError("snapshot: no mode has a positive cross-view variance; cannot estimate "
                         "sigma2")
    fp = cosine_fixed_point(sigma2, dp, present=ok)
    notes.append(f"kappa = (1+sigma2_min)(1+eps) = {fp.kappa:.4g}; modes collapse iff "
                 f"1+sigma2 >= {fp.kappa / max(dp.eps, dp.floor):.4g}")
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} modes without positive cross-view variance: predicted "
                     "collapsed")
    return ModePrediction("directset-cosine", "mean-field cosine fixed point "
                          "(dynamics.cosine.cosine_fixed_point: (1+sigma2_j) p_j = kappa)",
                          fp.survives, np.where(fp.survives, fp.p, np.nan), fp.e_rel,
                          np.where(fp.survives, 1.0, np.nan), notes)


#: ``predictor.name -> f(measured_final, hparams, config) -> ModePrediction``.
THEORIES: dict[str, Callable[[MeasuredModes, TheoryHParams, RunConfig], ModePrediction]] = {
    "linear": _linear_l2,
    "directpred": _directset,
    "directcopy": _directset,
}


def predict_modes(measured: MeasuredModes, hp: TheoryHParams,
                  cfg: RunConfig | Mapping[str, Any]) -> ModePrediction | None:
    """The prediction for the run's predictor, or None when no theory covers it."""
    c = as_run_config(cfg)
    fn = THEORIES.get(c.predictor.name)
    return None if fn is None else fn(measured, hp, c)
