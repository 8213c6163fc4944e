"""Forward predictions from a cutoff, scored against trivial baselines (``python -m analysis
scorecard RUN_DIR...``).

Every forecaster sees only what is known at the cutoff snapshot (the first spectra snapshot at or
after ``cutoff`` x the run's last snapshot step, 15 % by default) and the one before it: ``F`` and
its eigenbasis ``U_c``, the probe's same-view and cross-view moments along ``U_c`` (with their
bootstrap replicates when the snapshot has them), the predictor's ``Wp``, the config. It predicts
what happens *after* the cutoff and is scored on that.

Measured after the cutoff (:func:`measure_after`)
    ``m_j(k) = u_j^T F_k u_j`` along the cutoff's eigenvectors at every later snapshot ``k``, and
    the eigenvalues of ``F_k``. Final fate of cutoff mode ``j``: alive iff at least half of
    ``u_j`` lies in the final surviving subspace (``||P u_j||^2 >= 1/2``, ``P`` the projector on
    the eigenvectors of ``F_T`` with eigenvalue ``> tol x`` the largest), and the spectrum as a
    whole has not collapsed (``max eig F_T > tol x s_max`` at the cutoff). The subspace, not
    ``m_j(T)``, decides because the eigenvectors rotate: along a cutoff direction the mass of
    the rotated top modes keeps every ``m_j(T)`` above ``tol``.

Forecasters (:data:`FORECASTERS`; ``None`` where one does not apply to a run's predictor)
    Theories:

    ``cosine_modes`` (set predictors: directpred, directcopy)
        The project's mean-field cosine-loss per-mode flow (:func:`dynamics.cosine.cosine_mode_rhs`)
        integrated forward from the cutoff's ``s_j`` with the cutoff's ``sigma2_j`` and the run's
        DirectSet settings. Weight decay is left out: in this flow it shrinks every mode by the
        same factor and so cannot change the relative spectrum the scorecard compares (with the
        cosine loss the scale is free; THEORY.md section 5); its only effect, a faster flow at a
        smaller scale, is absorbed in the fitted time factor below.
    ``l2_modes``
        The paper's L2 per-mode dynamics. For set predictors Eqn 12 with ``p`` set by DirectSet
        (:func:`dynamics.cosine.l2_mode_rhs`), integrated. For the trained linear predictor the
        fixed points of Eqn 16 with the basin rule (:func:`l2_modes`; fates and ranks, no path).
    ``directset_threshold`` (every predictor; Wang et al. 2021)
        Feature ``k`` survives iff ``a_k^2 >= 4 eta (a_k + b_k)``, with the cross-view moment
        ``a_k`` and the augmentation moment ``b_k = same_k - cross_k`` along ``u_k``, both
        divided by the largest ``a`` (the scale of Eqn 16's ``X = I``), ``eta`` from
        :mod:`analysis.hparams`. Ranks by the margin ``a_k^2 - 4 eta (a_k + b_k)``.
    ``eqn17`` (run level, trained linear predictors; :func:`eqn17_aligns`)
        Theorem 3's condition at the cutoff: does ``Wp`` keep aligning with ``F`` (the relative
        commutator lower at the end than at the cutoff)? Against ``always_aligns`` and the
        persistence of the trend over the window before the cutoff.
    ``stepwise`` (every predictor; Simon et al. 2023)
        Modes are learned one at a time in the order of their view-invariant eigenvalue: the
        final ranks follow ``a_k``, and the modes alive at the cutoff are the top ones of that
        order (as many as are alive).

    Baselines, from the same information: ``persistence`` (the cutoff's state stays: fates,
    relative spectrum and ranks), ``all_survive`` (every mode alive, an isotropic spectrum),
    ``all_collapse`` and ``top_k`` (the ``k`` largest cutoff modes survive; ``k`` is the mean
    number of final survivors of the *other* runs given, the same setting's when there are any).

Time axis. The integrating theories run on the run's own time axis: theory time is ``k x
(step - cutoff step)`` with one factor ``k`` per run and theory, fitted on the window *before* the
cutoff (the previous snapshot's state, integrated over the window, against the cutoff's measured
relative spectrum; a log grid of ``k``, :data:`TIME_GRID`). The mapping of :mod:`analysis.hparams`
gives the nominal ``a``; ``k / a`` is reported, and the ``*_nominal`` variants integrate at ``k =
a`` itself (the a-priori mapping, no fit).

Across runs (:func:`orderings`): over all the runs given (one sweep table, say), the Spearman
correlation of each forecaster's predicted number of surviving modes and participation ratio of
the final spectrum against the measured ones, with a bootstrap interval over runs.

Scores (:func:`score`): fate accuracy and balanced accuracy (mean recall over the classes present),
the final relative spectrum's error in decades (sorted predicted against sorted measured
eigenvalues, ``log10`` floored at :data:`FLOOR`, median over the ranks alive in the measured
spectrum: a dying mode's fate is scored by the fate scores, its ever smaller value is not), the
path error (the same at every snapshot after the cutoff, median over snapshots and alive ranks), and the Spearman correlation
of predicted against measured final values per cutoff mode.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dynamics.cosine import integrate_directset_modes, l2_mode_rhs
from dynamics.sgd import directset_p
from dynamics.exact import fixed_point_branches

from . import metrics
from .hparams import TheoryHParams, map_hparams
from .jsonio import json_ready
from .predict import directset_config
from .runs import Run, load_run, require_finished

__all__ = ["orderings", "eqn17_aligns", "alignment_rows", "CUTOFF", "FLOOR", "TIME_GRID", "CutoffState", "Measured", "Forecast", "cutoff_state",
           "measure_after", "FORECASTERS", "THEORIES", "BASELINES", "score", "scorecard",
           "write_scorecard"]

#: Default cutoff, as a fraction of the run's last snapshot step.
CUTOFF = 0.15
#: Floor of relative eigenvalues before ``log10`` (a mode below it counts as this small).
FLOOR = 1e-6
#: Candidate time factors, as multiples of the nominal ``a`` of :mod:`analysis.hparams`.
TIME_GRID = np.logspace(-7, 3, 41)
_SET_PREDICTORS = ("directpred", "directcopy")


# ---------------------------------------------------------------------------------------------
# what is known at the cutoff, what is measured after it
# ---------------------------------------------------------------------------------------------
@dataclass
class CutoffState:
    """Everything a forecaster may use (module docstring). Arrays are per cutoff mode ``j``
    (descending eigenvalues of ``F`` at the cutoff)."""

    step: int
    prev_step: int
    final_step: int
    target_steps: np.ndarray          # the snapshot steps after the cutoff to predict
    U: np.ndarray
    s: np.ndarray                     # eigenvalues of F at the cutoff
    s_prev: np.ndarray                # u_j^T F_prev u_j (the previous snapshot along U)
    same: np.ndarray
    cross: np.ndarray
    sigma2: np.ndarray                # (same - cross) / cross; NaN where cross <= 0
    sigma2_ci: np.ndarray | None      # (2, d) 16-84 % bootstrap interval, or None
    n_pairs: int | None
    p: np.ndarray | None              # u_j^T Wp u_j at the cutoff
    p_prev: np.ndarray | None
    alive: np.ndarray
    predictor: str
    config: dict[str, Any]
    hp: TheoryHParams
    tol: float

    @property
    def sigma2_filled(self) -> np.ndarray:
        """``sigma2`` with the modes that have no view-invariant signal (NaN) set to the largest
        finite value (the most augmentation-dominated), clipped at 0."""
        s2 = np.asarray(self.sigma2, dtype=np.float64)
        finite = s2[np.isfinite(s2)]
        fill = float(np.max(finite)) if finite.size else 1.0
        return np.clip(np.where(np.isfinite(s2), s2, fill), 0.0, None)


@dataclass
class Measured:
    """After the cutoff: ``along`` ``(k, d)`` = ``u_j^T F_k u_j``, ``spectra`` ``(k, d)`` the
    eigenvalues of ``F_k`` (descending), at ``steps``; the final fates."""

    steps: np.ndarray
    along: np.ndarray
    spectra: np.ndarray
    fates: np.ndarray
    total_collapse: bool
    overlap: np.ndarray | None = None  # ||P_alive u_j||^2, the share of u_j in the final surviving subspace
    tol: float = metrics.COLLAPSE_REL_TOL

    @property
    def n_alive(self) -> int:
        return int(self.fates.sum())


def _snap_or_refuse(run: Run, step: int, keys: Sequence[str]) -> dict[str, Any]:
    snap = run.snapshot(step)
    missing = [k for k in keys if k not in snap]
    if missing:
        raise ValueError(f"{run.path}: the snapshot at step {step} lacks {missing} (run with "
                         "log.save_matrices=true)")
    return snap


def cutoff_state(run: Run, *, cutoff: float = CUTOFF, tol: float = metrics.COLLAPSE_REL_TOL,
                 convention: str = "continuous") -> CutoffState:
    """The state at the cutoff snapshot of ``run`` (module docstring)."""
    if not (isinstance(cutoff, (int, float)) and 0 < cutoff < 1):
        raise ValueError(f"cutoff={cutoff!r} is invalid: allowed a number in (0, 1)")
    steps = run.snapshot_steps
    if len(steps) < 3:
        raise ValueError(f"{run.path}: needs at least 3 spectra snapshots, has {len(steps)}")
    final = steps[-1]
    later = [s for s in steps if s >= cutoff * final and s > steps[0]]
    c = later[0]
    if c == final:
        raise ValueError(f"{run.path}: no snapshot after the cutoff step {c}; lower --cutoff")
    prev = steps[steps.index(c) - 1]
    snap = _snap_or_refuse(run, c, ("F", "same_on_F", "cross_on_F"))
    before = _snap_or_refuse(run, prev, ("F",))
    s, U = metrics.eigh_desc(snap["F"])
    same, cross = np.asarray(snap["same_on_F"]), np.asarray(snap["cross_on_F"])
    ci = None
    if "same_on_F_boot" in snap:
        boot = metrics.augmentation_sigma2(snap["same_on_F_boot"], snap["cross_on_F_boot"])
        with np.errstate(invalid="ignore"):
            ci = np.nanpercentile(boot, [16, 84], axis=0)
    p = p_prev = None
    if "Wp" in snap and "Wp" in before:
        p = metrics.project_on_modes(snap["Wp"], U)
        p_prev = metrics.project_on_modes(before["Wp"], U)
    cfg = run.config
    return CutoffState(
        step=c, prev_step=prev, final_step=final,
        target_steps=np.array([t for t in steps if t > c]),
        U=U, s=s, s_prev=metrics.project_on_modes(before["F"], U), same=same, cross=cross,
        sigma2=metrics.augmentation_sigma2(same, cross), sigma2_ci=ci,
        n_pairs=snap.get("n_probe_pairs"), p=p, p_prev=p_prev,
        alive=~metrics.collapsed_mask(s, rel_tol=tol),
        predictor=str(cfg.get("predictor", {}).get("name", "?")), config=cfg,
        hp=map_hparams(cfg, convention), tol=tol)


def measure_after(run: Run, cut: CutoffState) -> Measured:
    """What the run did after the cutoff, along the cutoff's eigenvectors (module docstring)."""
    along, spectra = [], []
    for st in cut.target_steps:
        F = _snap_or_refuse(run, int(st), ("F",))["F"]
        along.append(metrics.project_on_modes(F, cut.U))
        spectra.append(metrics.spectrum(F))
    along_a, spectra_a = np.array(along), np.array(spectra)
    total = bool(spectra_a[-1, 0] <= cut.tol * cut.s[0])
    lam, V = metrics.eigh_desc(F)
    alive = V[:, ~metrics.collapsed_mask(lam, rel_tol=cut.tol)]
    overlap = np.sum((alive.T @ cut.U) ** 2, axis=0)
    fates = (overlap >= 0.5) & (not total)
    return Measured(cut.target_steps, along_a, spectra_a, fates, total, overlap, cut.tol)


# ---------------------------------------------------------------------------------------------
# forecasters
# ---------------------------------------------------------------------------------------------
@dataclass
class Forecast:
    """A forecaster's prediction for the cutoff modes: ``fates`` (d,) bool, ``path`` (k, d)
    values along the cutoff modes at the target steps (any scale), ``rank_score`` (d,) (larger =
    larger at the end), each None when not predicted; ``info`` (e.g. the fitted time factor)."""

    fates: np.ndarray | None = None
    path: np.ndarray | None = None
    rank_score: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> np.ndarray | None:
        return None if self.path is None else self.path[-1]


def _rel(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, None)
    top = np.max(v, axis=-1, keepdims=True)
    return np.where(top > 0, v / np.where(top > 0, top, 1.0), 0.0)


def _log_rel(v: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(_rel(v), FLOOR))


def _fates_of(path: np.ndarray, reference: float, tol: float) -> np.ndarray:
    end = np.clip(path[-1], 0.0, None)
    if end.max() <= tol * reference:
        return np.zeros(end.shape, bool)
    return ~metrics.collapsed_mask(end, rel_tol=tol)


def _fit_and_run(cut: CutoffState, flow: Callable[[np.ndarray | None, np.ndarray, float, np.ndarray], np.ndarray],
                 state_prev: tuple[np.ndarray | None, np.ndarray], state_now: tuple[np.ndarray | None, np.ndarray],
                 *, nominal: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit the time factor on the window before the cutoff (or take the nominal ``a`` of
    :mod:`analysis.hparams` when ``nominal``), then integrate from the cutoff.
    ``flow(p0, e0, t_end, t_eval)`` returns ``e`` at ``t_eval`` (rows)."""
    a = cut.hp.a
    window = cut.step - cut.prev_step
    target = _log_rel(cut.s)
    best, best_err = None, math.inf
    for g in ([1.0] if nominal else TIME_GRID):
        try:
            s_at = flow(*state_prev, g * a * window, np.array([g * a * window]))[-1]
        except (FloatingPointError, ArithmeticError, ValueError):
            continue
        if not np.all(np.isfinite(s_at)):
            continue
        err = float(np.mean((_log_rel(s_at) - target) ** 2))
        if err < best_err:
            best, best_err = g, err
    if best is None:
        raise ValueError("no time factor gives a finite flow over the window before the cutoff")
    t_eval = best * a * (cut.target_steps - cut.step).astype(np.float64)
    path = flow(*state_now, float(t_eval[-1]), t_eval)
    edge = (not nominal) and best in (TIME_GRID[0], TIME_GRID[-1])
    return path, {"time_factor_over_a": float(best), "window_fit_dex2": best_err, "time_factor_at_grid_edge": edge}


def _directset_flow(cut: CutoffState, loss: str) -> Callable[..., np.ndarray]:
    """The per-mode flow of a set predictor (``p = directset_p(s (1 + sigma2))``), from and to
    ``e = s (1 + sigma2)``: the eigenvalues of ``F = W (X + X') W^T``, which is what a run's ``F``
    (the correlation of the online outputs of both views) measures; ``s`` of the theory is the
    cross-view part ``W X W^T``.

    Cosine: :func:`dynamics.cosine.integrate_directset_modes` from the measured scale (the flow's
    speed in ``log s`` is inversely proportional to it), without weight decay (module docstring). L2: Eqn 12 with ``p`` set is homogeneous of degree 1
    in ``s`` (``p`` depends on ratios only), so ``d log s_m / dt`` depends on the relative
    spectrum alone; it is integrated in ``log s`` (:func:`scipy.integrate.solve_ivp`, LSODA) so
    that a spectrum shrinking as a whole (the L2 theory's total collapse) never underflows."""
    dp = directset_config(cut.config)
    sym = cut.hp.loss_terms == 2
    lam = 1.0 + cut.sigma2_filled

    def cosine(_p0: Any, e0: np.ndarray, t_end: float, t_eval: np.ndarray) -> np.ndarray:
        s0 = np.clip(e0, 0.0, None) / lam
        traj = integrate_directset_modes(s0, loss=loss, sigma2=lam - 1.0, eta=0.0, tau=1.0,
                                         directpred=dp, symmetric=sym, t_end=t_end, method="LSODA",
                                         n_save=257)
        return np.stack([np.interp(t_eval, traj.t, traj.e[:, j]) for j in range(s0.size)], axis=1)

    def l2(_p0: Any, e0: np.ndarray, t_end: float, t_eval: np.ndarray) -> np.ndarray:
        from scipy.integrate import solve_ivp

        s0 = np.clip(e0, 0.0, None) / lam
        y0 = np.log(np.maximum(s0, FLOOR * max(float(np.max(s0)), 1e-300)))

        def rate(_t: float, y: np.ndarray) -> np.ndarray:
            rel = np.exp(y - y.max())
            return l2_mode_rhs(rel, directset_p(rel * lam, dp), sigma2=lam - 1.0, eta=cut.hp.eta,
                               tau=1.0, symmetric=sym) / rel

        with np.errstate(invalid="ignore", divide="ignore"):
            sol = solve_ivp(rate, (0.0, t_end), y0, method="LSODA", t_eval=np.sort(t_eval), rtol=1e-6, atol=1e-9)
        if not sol.success:
            raise FloatingPointError(sol.message)
        return np.exp(sol.y.T) * lam

    return l2 if loss == "l2" else cosine


def _set_only(cut: CutoffState) -> bool:
    pc = cut.config.get("predictor", {})
    return (cut.predictor in _SET_PREDICTORS and int(pc.get("partitions", 1)) == 1
            and int(pc.get("feature_blocks", 1)) == 1)


def cosine_modes(cut: CutoffState, context: Mapping[str, Any], *, nominal: bool = False) -> Forecast | None:
    if not _set_only(cut):
        return None
    path, info = _fit_and_run(cut, _directset_flow(cut, "cosine"), (None, cut.s_prev), (None, cut.s),
                              nominal=nominal)
    return Forecast(_fates_of(path, float(path[0].max()), cut.tol), path, path[-1], info)


def l2_modes(cut: CutoffState, context: Mapping[str, Any], *, nominal: bool = False) -> Forecast | None:
    """Set predictors: Eqn 12 with ``p`` set, integrated. Trained linear predictor: the fixed
    points of Eqns 11-16 with the basin rule -- mode ``j`` survives iff ``eta < eta_c(sigma2_j)``
    and its cutoff ``p_j`` lies above the unstable branch ``p*_-``, with ``p`` scaled so that the
    top mode's ``p`` equals its ``p*_+`` (the cosine loss leaves the scale of ``Wp`` free). No
    path: Eqns 11-13 integrated from the measured ``(p, s)`` diverge (measured ``sigma2`` up to
    ~60 makes them stiff at every time factor tried)."""
    if _set_only(cut):
        path, info = _fit_and_run(cut, _directset_flow(cut, "l2"), (None, cut.s_prev), (None, cut.s),
                                  nominal=nominal)
        return Forecast(_fates_of(path, float(path[0].max()), cut.tol), path, path[-1], info)
    if cut.predictor != "linear" or cut.p is None or nominal:
        return None
    p_minus, p_plus = fixed_point_branches(1.0, cut.hp.eta, cut.sigma2_filled)
    p = cut.p * (p_plus[0] / cut.p[0]) if cut.p[0] > 0 and np.isfinite(p_plus[0]) else cut.p
    fates = np.isfinite(p_plus) & (p > np.nan_to_num(p_minus, nan=np.inf))
    rank = np.where(fates, np.nan_to_num(p_plus) ** 2, -1.0 + np.tanh(p))
    return Forecast(fates=fates, rank_score=rank, info={"eta": cut.hp.eta})


def _ab(cut: CutoffState) -> tuple[np.ndarray, np.ndarray]:
    cross = np.clip(cut.cross, 0.0, None)
    top = float(cross.max()) if cross.max() > 0 else 1.0
    return cross / top, np.clip(cut.same - cut.cross, 0.0, None) / top


def directset_threshold(cut: CutoffState, context: Mapping[str, Any]) -> Forecast:
    a, b = _ab(cut)
    margin = a ** 2 - 4.0 * cut.hp.eta * (a + b)
    return Forecast(fates=margin >= 0, rank_score=margin, info={"eta": cut.hp.eta})


def stepwise(cut: CutoffState, context: Mapping[str, Any]) -> Forecast:
    a, _ = _ab(cut)
    order = np.argsort(-a, kind="stable")
    fates = np.zeros(a.size, bool)
    fates[order[:int(cut.alive.sum())]] = True
    return Forecast(fates=fates, rank_score=a)


def persistence(cut: CutoffState, context: Mapping[str, Any]) -> Forecast:
    return Forecast(cut.alive.copy(), np.tile(cut.s, (cut.target_steps.size, 1)), cut.s.copy())


def all_survive(cut: CutoffState, context: Mapping[str, Any]) -> Forecast:
    d = cut.s.size
    return Forecast(np.ones(d, bool), np.ones((cut.target_steps.size, d)), None)


def all_collapse(cut: CutoffState, context: Mapping[str, Any]) -> Forecast:
    return Forecast(fates=np.zeros(cut.s.size, bool))


def top_k(cut: CutoffState, context: Mapping[str, Any]) -> Forecast | None:
    k = context.get("top_k")
    if k is None:
        return None
    fates = np.zeros(cut.s.size, bool)
    fates[:int(k)] = True  # U is sorted by the cutoff's eigenvalues
    return Forecast(fates=fates, rank_score=cut.s.copy(), info={"k": int(k)})


#: name -> forecaster(cutoff state, context) -> Forecast or None (does not apply).
THEORIES: dict[str, Callable[[CutoffState, Mapping[str, Any]], Forecast | None]] = {
    "cosine_modes": cosine_modes,
    "cosine_modes_nominal": partial(cosine_modes, nominal=True),
    "l2_modes": l2_modes,
    "l2_modes_nominal": partial(l2_modes, nominal=True),
    "directset_threshold": directset_threshold,
    "stepwise": stepwise,
}
BASELINES: dict[str, Callable[[CutoffState, Mapping[str, Any]], Forecast | None]] = {
    "persistence": persistence,
    "all_survive": all_survive,
    "all_collapse": all_collapse,
    "top_k": top_k,
}
FORECASTERS = {**THEORIES, **BASELINES}


# ---------------------------------------------------------------------------------------------
# run level: does Wp keep aligning with F after the cutoff (Theorem 3, Eqn 17)?
# ---------------------------------------------------------------------------------------------
def eqn17_aligns(cut: CutoffState) -> bool | None:
    """Eqn 17 at the cutoff, for a trained linear predictor: ``[F, Wp]`` keeps decaying iff every
    mode alive at the cutoff satisfies ``Delta_j < (alpha_p (1 + sigma2_j) s_j + eta) / 2`` with
    ``Delta_j = p_j [tau - (1 + sigma2_j) p_j] - eta``, ``tau = 1`` (SimSiam, or BYOL's EMA at its
    fixed point). Units as in :func:`l2_modes`: ``p`` scaled so that the top mode's ``p`` is its
    ``p*_+`` (Eqn 16), ``s`` so that the top mode sits on the parabola ``s = p^2 / alpha_p``
    (Eqn 14 with ``c = 0``). None when the run has no trained linear predictor."""
    if cut.predictor != "linear" or cut.p is None:
        return None
    lam = 1.0 + cut.sigma2_filled
    _, p_plus = fixed_point_branches(1.0, cut.hp.eta, cut.sigma2_filled)
    p = cut.p * (p_plus[0] / cut.p[0]) if cut.p[0] > 0 and np.isfinite(p_plus[0]) else cut.p
    s = cut.s * (p[0] ** 2 / cut.hp.alpha_p) / cut.s[0] if cut.s[0] > 0 else cut.s
    delta = p * (1.0 - lam * p) - cut.hp.eta
    ok = delta < 0.5 * (cut.hp.alpha_p * lam * s + cut.hp.eta)
    return bool(np.all(ok[cut.alive]))


def alignment_rows(run: Run, cut: CutoffState) -> list[dict[str, Any]]:
    """Run-level forecasts of whether the relative commutator ``||[F, Wp]|| / (||F|| ||Wp||)``
    is lower at the end than at the cutoff: Eqn 17 (:func:`eqn17_aligns`) against the baselines
    ``always_aligns`` and ``persistence`` (the change over the window before the cutoff goes on)."""
    pred = eqn17_aligns(cut)
    if pred is None:
        return []
    key = "relative_commutator"
    at = {st: run.snapshot(st).get(key) for st in (cut.prev_step, cut.step, cut.final_step)}
    if any(v is None for v in at.values()):
        return []
    measured = at[cut.final_step] < at[cut.step]
    forecasts = {"eqn17": pred, "always_aligns": True, "persistence": at[cut.step] < at[cut.prev_step]}
    return [{"forecaster": name, "kind": "theory" if name == "eqn17" else "baseline",
             "aligns_pred": p, "aligns_meas": bool(measured), "right": p == measured,
             "commutator_cutoff": float(at[cut.step]), "commutator_final": float(at[cut.final_step])}
            for name, p in forecasts.items()]


# ---------------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------------
def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall over the classes present in ``truth``."""
    recalls = [float(np.mean(pred[truth == c] == c)) for c in (True, False) if np.any(truth == c)]
    return float(np.mean(recalls))


def meas_tol(meas: Measured) -> float:
    return meas.tol


def score(fc: Forecast, meas: Measured) -> dict[str, float | None]:
    """The scores of one forecast against one run's measurements (module docstring)."""
    out: dict[str, float | None] = {"fate_acc": None, "fate_bacc": None, "spectrum_dex": None,
                                    "path_dex": None, "spearman": None}
    if fc.fates is not None:
        out["fate_acc"] = float(np.mean(fc.fates == meas.fates))
        out["fate_bacc"] = balanced_accuracy(fc.fates, meas.fates)
    if fc.path is not None:
        pred = np.sort(_log_rel(fc.path), axis=1)[:, ::-1]
        got = _log_rel(meas.spectra)
        alive = got > math.log10(meas_tol(meas))  # ranks alive in the measured spectrum
        err = np.abs(pred - got)
        out["spectrum_dex"] = float(np.median(err[-1][alive[-1]])) if alive[-1].any() else None
        out["path_dex"] = float(np.median(err[alive])) if alive.any() else None
    ranks = fc.rank_score if fc.rank_score is not None else fc.final
    if ranks is not None:
        out["spearman"] = _spearman(np.asarray(ranks, dtype=np.float64), meas.along[-1])
    return out


# ---------------------------------------------------------------------------------------------
# many runs
# ---------------------------------------------------------------------------------------------
def _setting(run: Run) -> str:
    """The sweep cell of a run folder (``.../CELL/seedN`` -> CELL), else the folder's name."""
    return run.path.parent.name if run.path.name.startswith("seed") else run.path.name


def scorecard(run_dirs: Sequence[str | Path], *, cutoff: float = CUTOFF,
              tol: float = metrics.COLLAPSE_REL_TOL, convention: str = "continuous") -> dict[str, Any]:
    """Score every forecaster on every run (module docstring). Refuses runs that are not
    finished (:func:`analysis.runs.run_status` other than ``done``)."""
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol={tol!r} is invalid: allowed a number in (0, 1)")
    runs, cuts, meas = [], [], []
    for d in run_dirs:
        require_finished(d)
        run = load_run(d)
        cut = cutoff_state(run, cutoff=cutoff, tol=tol, convention=convention)
        runs.append(run)
        cuts.append(cut)
        meas.append(measure_after(run, cut))
    rows: list[dict[str, Any]] = []
    align: list[dict[str, Any]] = []
    for i, (run, cut, m) in enumerate(zip(runs, cuts, meas)):
        same = [j for j in range(len(runs)) if j != i and _setting(runs[j]) == _setting(run)]
        others = same or [j for j in range(len(runs)) if j != i]
        context = {"top_k": round(float(np.mean([meas[j].n_alive for j in others]))) if others else None}
        base = {"run": str(run.path), "setting": _setting(run), "seed": run.config.get("seed"),
                "predictor": cut.predictor, "cutoff_step": cut.step, "final_step": cut.final_step,
                "n_modes": int(cut.s.size), "n_alive_cutoff": int(cut.alive.sum()),
                "n_alive_final": m.n_alive, "total_collapse": m.total_collapse,
                "n_probe_pairs": cut.n_pairs,
                "sigma2_ci_width_median": (None if cut.sigma2_ci is None else
                                           float(np.nanmedian(cut.sigma2_ci[1] - cut.sigma2_ci[0])))}
        align += [{"run": str(run.path), "setting": _setting(run), "seed": run.config.get("seed"), **r}
                  for r in alignment_rows(run, cut)]
        for name, fn in FORECASTERS.items():
            try:
                fc = fn(cut, context)
            except ValueError as err:
                rows.append({**base, "forecaster": name, "kind": _kind(name), "error": str(err)})
                continue
            if fc is None:
                continue
            rows.append({**base, "forecaster": name, "kind": _kind(name), **score(fc, m),
                         **_run_level(fc, m), **{f"info_{k}": v for k, v in fc.info.items()}})
    return {"cutoff": cutoff, "tol": tol, "convention": convention, "rows": rows,
            "summary": summarise(rows), "orderings": orderings(rows), "alignment": align}


def _run_level(fc: Forecast, meas: Measured) -> dict[str, Any]:
    """Run-level quantities for the orderings across runs: the number of surviving modes and the
    participation ratio of the final spectrum, predicted and measured."""
    out: dict[str, Any] = {"n_alive_meas": meas.n_alive,
                           "pr_meas": float(metrics.participation_ratio(np.clip(meas.spectra[-1], 0, None)))}
    out["n_alive_pred"] = None if fc.fates is None else int(fc.fates.sum())
    out["pr_pred"] = (None if fc.path is None else
                      float(metrics.participation_ratio(np.clip(fc.path[-1], 0, None))))
    return out


def orderings(rows: Sequence[Mapping[str, Any]], *, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Across all the runs given (e.g. one sweep table), per forecaster: the Spearman correlation
    of the predicted against the measured number of surviving modes and participation ratio,
    with a 16-84 % bootstrap interval over runs (resampled with replacement; resamples without
    spread in either variable are skipped). Needs 4 runs or more."""
    rng = np.random.default_rng(seed)
    out = []
    for name in FORECASTERS:
        sel = [r for r in rows if r["forecaster"] == name and "error" not in r]
        entry: dict[str, Any] = {"forecaster": name, "kind": _kind(name), "n_runs": len(sel)}
        for what in ("n_alive", "pr"):
            pairs = np.array([(r[f"{what}_pred"], r[f"{what}_meas"]) for r in sel
                              if r.get(f"{what}_pred") is not None], dtype=np.float64)
            rho = lo = hi = None
            if len(pairs) >= 4:
                rho = _spearman(pairs[:, 0], pairs[:, 1])
                boots = []
                for _ in range(n_boot):
                    b = pairs[rng.integers(0, len(pairs), len(pairs))]
                    v = _spearman(b[:, 0], b[:, 1])
                    if v is not None:
                        boots.append(v)
                if rho is not None and len(boots) >= n_boot // 2:
                    lo, hi = (float(x) for x in np.percentile(boots, [16, 84]))
            entry[what] = {"spearman": rho, "ci16": lo, "ci84": hi, "n": int(len(pairs))}
        out.append(entry)
    return out


def _kind(name: str) -> str:
    return "theory" if name in THEORIES else "baseline"


SCORES = ("fate_acc", "fate_bacc", "spectrum_dex", "path_dex", "spearman")


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over the runs (seeds) of each setting, per forecaster."""
    out = []
    keys = sorted({(r["setting"], r["forecaster"]) for r in rows},
                  key=lambda k: (k[0], list(FORECASTERS).index(k[1])))
    for setting, name in keys:
        sel = [r for r in rows if r["setting"] == setting and r["forecaster"] == name]
        entry: dict[str, Any] = {"setting": setting, "forecaster": name, "kind": _kind(name),
                                 "n_runs": len(sel)}
        for sc in SCORES:
            v = np.array([r[sc] for r in sel if r.get(sc) is not None], dtype=np.float64)
            entry[sc] = None if v.size == 0 else float(v.mean())
            entry[sc + "_std"] = None if v.size < 2 else float(v.std(ddof=1))
        out.append(entry)
    return out


def _cell(v: float | None, sd: float | None, fmt: str) -> str:
    if v is None:
        return "-"
    return f"{v:{fmt}}" + ("" if sd is None else f" ± {sd:{fmt}}")


def markdown(card: Mapping[str, Any]) -> str:
    """The summary as markdown tables, one per setting (mean ± std over seeds)."""
    lines = [f"Cutoff {card['cutoff']:.0%} of the run; fate rule tol = {card['tol']:g}. Mean ± std "
             "over seeds. dex = decades (lower is better).", ""]
    for setting in dict.fromkeys(e["setting"] for e in card["summary"]):
        ent = [e for e in card["summary"] if e["setting"] == setting]
        runs = [r for r in card["rows"] if r["setting"] == setting and r["forecaster"] == "persistence"]
        alive = ", ".join(f"{r['n_alive_cutoff']}->{r['n_alive_final']}" for r in runs)
        lines += [f"### {setting} ({ent[0]['n_runs']} runs; modes alive cutoff->end: {alive})", "",
                  "| forecaster | kind | fate acc | balanced acc | spectrum dex | path dex | Spearman |",
                  "|---|---|---|---|---|---|---|"]
        for e in ent:
            lines.append(f"| {e['forecaster']} | {e['kind']} | "
                         f"{_cell(e['fate_acc'], e['fate_acc_std'], '.2f')} | "
                         f"{_cell(e['fate_bacc'], e['fate_bacc_std'], '.2f')} | "
                         f"{_cell(e['spectrum_dex'], e['spectrum_dex_std'], '.2f')} | "
                         f"{_cell(e['path_dex'], e['path_dex_std'], '.2f')} | "
                         f"{_cell(e['spearman'], e['spearman_std'], '.2f')} |")
        lines.append("")
    if card.get("alignment"):
        lines += ["### Does `Wp` keep aligning with `F` after the cutoff? (runs with a trained linear "
                  "predictor; Eqn 17 against baselines)", "",
                  "| forecaster | kind | right | runs where it aligned |", "|---|---|---|---|"]
        for name in dict.fromkeys(r["forecaster"] for r in card["alignment"]):
            sel = [r for r in card["alignment"] if r["forecaster"] == name]
            lines.append(f"| {name} | {sel[0]['kind']} | {sum(r['right'] for r in sel)}/{len(sel)} | "
                         f"{sum(r['aligns_meas'] for r in sel)}/{len(sel)} |")
        lines.append("")
    if card.get("orderings"):
        lines += ["### Across the runs given: predicted against measured ordering (Spearman, 16-84 % "
                  "bootstrap over runs)", "",
                  "| forecaster | kind | runs | surviving modes | participation ratio |", "|---|---|---|---|---|"]
        for e in card["orderings"]:
            cells = []
            for what in ("n_alive", "pr"):
                o = e[what]
                cells.append("-" if o["spearman"] is None else
                             f"{o['spearman']:.2f}" + ("" if o["ci16"] is None else f" [{o['ci16']:.2f}, {o['ci84']:.2f}]"))
            lines.append(f"| {e['forecaster']} | {e['kind']} | {e['n_runs']} | {cells[0]} | {cells[1]} |")
        lines.append("")
    return "\n".join(lines)


def write_scorecard(run_dirs: Sequence[str | Path], out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`scorecard`, written to ``out``: ``scorecard.json``, ``scorecard.csv`` (one row per
    run and forecaster), ``scorecard.md`` and ``scorecard.png``."""
    from .runs import write_json_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    card = scorecard(run_dirs, **kwargs)
    write_json_atomic(out / "scorecard.json", json_ready(card))
    cols = sorted({k for r in card["rows"] for k in r}, key=lambda k: (k not in ("setting", "seed", "forecaster"), k))
    with open(out / "scorecard.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in card["rows"]:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    (out / "scorecard.md").write_text(markdown(card))
    from .plots import plot_scorecard

    plot_scorecard(card, out / "scorecard.png")
    return card
