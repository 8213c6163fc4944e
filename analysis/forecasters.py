"""The forecasters of the scorecard: theories and baselines, each a function of the cutoff state
alone (:class:`analysis.cutoff.CutoffState`; :mod:`analysis.scorecard` describes them), and the
run-level alignment forecast of Eqn 17."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from dynamics.cosine import cosine_mode_rhs, integrate_directset_modes, l2_mode_rhs
from dynamics.exact import fixed_point_branches
from dynamics.sgd import directset_p

from . import metrics
from .cutoff import FLOOR, CutoffState
from .predict import directset_config

__all__ = ["TIME_GRID", "CLOCK_RANGE", "Forecast", "THEORIES", "BASELINES", "FORECASTERS", "cosine_modes",
           "cosine_modes_clocked", "cosine_modes_clocked_wd", "mode_clocks", "driven_mode_clocks",
           "linear_mode_clocks", "l2_modes",
           "l2_modes_clocked", "l2_basin",
           "directset_threshold", "stepwise", "persistence", "all_survive", "all_collapse", "top_k",
           "log_linear", "trend", "ORACLES", "kind_of", "LOG_LINEAR_TAU_WINDOWS", "run_level_of",
           "log_rel"]

#: Candidate time factors, as multiples of the nominal ``a`` of :mod:`analysis.hparams`.
TIME_GRID = np.logspace(-7, 3, 41)
_SET_PREDICTORS = ("directpred", "directcopy")


@dataclass
class Forecast:
    """A forecaster's prediction for the cutoff modes: ``fates`` (d,) bool, ``path`` (k, d)
    values along the cutoff modes at the target steps (any scale), ``rank_score`` (d,) (larger =
    larger at the end), each None when not predicted; ``info`` (e.g. the fitted time factor)."""

    fates: np.ndarray | None = None
    path: np.ndarray | None = None
    rank_score: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: run-level predictions for the orderings across runs (``n_alive``, ``pr``, ``rankme``) of a
    #: forecaster that predicts no per-mode path (:func:`trend`); else derived from the path
    run_level: dict[str, float] | None = None

    @property
    def final(self) -> np.ndarray | None:
        return None if self.path is None else self.path[-1]


def _rel(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, None)
    top = np.max(v, axis=-1, keepdims=True)
    return np.where(top > 0, v / np.where(top > 0, top, 1.0), 0.0)


def log_rel(v: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(_rel(v), FLOOR))


def _fates_of(path: np.ndarray, reference: float, tol: float) -> np.ndarray:
    if not np.all(np.isfinite(path[-1])):  # a failed flow, not a fate
        raise FloatingPointError("non-finite forecast path")
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
    target = log_rel(cut.s)
    best, best_err = None, math.inf
    for g in ([1.0] if nominal else TIME_GRID):
        try:
            s_at = flow(*state_prev, g * a * window, np.array([g * a * window]))[-1]
        except (FloatingPointError, ArithmeticError, ValueError):
            continue
        if not np.all(np.isfinite(s_at)):
            continue
        err = float(np.mean((log_rel(s_at) - target) ** 2))
        if err < best_err:
            best, best_err = g, err
    if best is None:
        raise ValueError("no time factor gives a finite flow over the window before the cutoff")
    t_eval = best * a * (cut.target_steps - cut.step).astype(np.float64)
    path = flow(*state_now, float(t_eval[-1]), t_eval)
    edge = (not nominal) and best in (TIME_GRID[0], TIME_GRID[-1])
    return path, {"time_factor_over_a": float(best), "window_fit_dex2": best_err, "time_factor_at_grid_edge": edge}


#: The most right-hand-side evaluations one integration of a flow may take (about a second); a
#: flow that needs more is stiff beyond use here and counts as the forecaster failing on the run.
MAX_FLOW_EVALUATIONS = 20_000


def _directset_flow(cut: CutoffState, loss: str, x: np.ndarray | float = 1.0,
                    cosine_eta: float = 0.0) -> Callable[..., np.ndarray]:
    """The per-mode flow of a set predictor (``p = directset_p(s (1 + sigma2))``), from and to
    ``e = s (1 + sigma2)``: the eigenvalues of ``F = W (X + X') W^T``, which is what a run's ``F``
    (the correlation of the online outputs of both views) measures; ``s`` of the theory is the
    cross-view part ``W X W^T``.

    Cosine: :func:`dynamics.cosine.integrate_directset_modes` from the measured scale (the flow's
    speed in ``log s`` is inversely proportional to it), without weight decay (module docstring). L2: Eqn 12 with ``p`` set is homogeneous of degree 1
    in ``s`` (``p`` depends on ratios only), so ``d log s_m / dt`` depends on the relative
    spectrum alone; it is integrated in ``log s`` (:func:`scipy.integrate.solve_ivp`, LSODA) so
    that a spectrum shrinking as a whole (the L2 theory's total collapse) never underflows.
    ``x``: the modes' clocks (:mod:`dynamics.cosine`; 1 = one clock for all); ``cosine_eta``: the
    weight decay of the cosine flow (0 but for :func:`cosine_modes_clocked_wd`)."""
    dp = directset_config(cut.config)
    sym = cut.hp.loss_terms == 2
    lam = 1.0 + cut.sigma2_filled

    def cosine(_p0: Any, e0: np.ndarray, t_end: float, t_eval: np.ndarray) -> np.ndarray:
        s0 = np.clip(e0, 0.0, None) / lam
        traj = integrate_directset_modes(s0, loss=loss, sigma2=lam - 1.0, eta=cosine_eta, tau=1.0,
                                         directpred=dp, symmetric=sym, t_end=t_end, method="LSODA",
                                         n_save=257, x=x)
        return np.stack([np.interp(t_eval, traj.t, traj.e[:, j]) for j in range(s0.size)], axis=1)

    def l2(_p0: Any, e0: np.ndarray, t_end: float, t_eval: np.ndarray) -> np.ndarray:
        from scipy.integrate import solve_ivp

        s0 = np.clip(e0, 0.0, None) / lam
        y0 = np.log(np.maximum(s0, FLOOR * max(float(np.max(s0)), 1e-300)))

        calls = [0]

        def rate(_t: float, y: np.ndarray) -> np.ndarray:
            calls[0] += 1
            if calls[0] > MAX_FLOW_EVALUATIONS:  # a stiff flow LSODA crawls through: give up
                raise FloatingPointError(f"the L2 flow needed more than {MAX_FLOW_EVALUATIONS} "
                                         "evaluations (stiff); no forecast")
            rel = np.exp(y - y.max())
            return l2_mode_rhs(rel, directset_p(rel * lam, dp), sigma2=lam - 1.0, eta=cut.hp.eta,
                               tau=1.0, symmetric=sym, x=x) / rel

        with np.errstate(invalid="ignore", divide="ignore"):
            sol = solve_ivp(rate, (0.0, t_end), y0, method="LSODA", t_eval=np.sort(t_eval), rtol=1e-6, atol=1e-9)
        if not sol.success:
            raise FloatingPointError(sol.message)
        return np.exp(sol.y.T) * lam

    return l2 if loss == "l2" else cosine


def _set_only(cut: CutoffState) -> bool:
    pc = cut.config.predictor
    return cut.predictor in _SET_PREDICTORS and pc.partitions == 1 and pc.feature_blocks == 1


def cosine_modes(cut: CutoffState, context: Mapping[str, Any], *, nominal: bool = False,
                 clocks: np.ndarray | float = 1.0) -> Forecast | None:
    """The cosine flow from the cutoff (module docstring of :mod:`analysis.scorecard`). ``clocks``:
    per-mode clocks known a priori (on the linear network, ``u_j^T X u_j``; :mod:`dynamics.cosine`),
    1 for one clock; a real run has none known (:func:`cosine_modes_clocked` fits them)."""
    if not _set_only(cut):
        return None
    path, info = _fit_and_run(cut, _directset_flow(cut, "cosine", clocks), (None, cut.s_prev), (None, cut.s),
                              nominal=nominal)
    return Forecast(_fates_of(path, float(path[0].max()), cut.tol), path, path[-1], info)


#: Range of the per-mode clocks fitted by the ``*_clocked`` forecasters, as multiples of the
#: nominal time ``a`` of :mod:`analysis.hparams` (the span of :data:`TIME_GRID`).
CLOCK_RANGE = (float(TIME_GRID[0]), float(TIME_GRID[-1]))


def _clocks_from_window(ends: list[np.ndarray], loss_rates: np.ndarray, time: float,
                        decay: float = 0.0) -> np.ndarray:
    """Per-mode clocks from the window before the cutoff: the measured rate of ``log s_m``
    between the two ``ends`` (plus the weight-decay ``decay`` rate the flow adds at every clock)
    divided by the loss part of the flow's rate at unit clock (``loss_rates``, the mean of the
    two ends). Where the two disagree in sign, or either is too small to tell (a change below
    5 % over the window), the mode gets the median of the clocks found (1 if none is);
    clipped to :data:`CLOCK_RANGE`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        meas = (np.log(ends[1]) - np.log(ends[0])) / time + decay
        x = meas / loss_rates
    ok = (np.isfinite(x) & (x > 0) & (np.abs(loss_rates * time) >= 0.05) & (np.abs(meas * time) >= 0.05))
    fallback = float(np.median(x[ok])) if ok.any() else 1.0
    return np.clip(np.where(ok, x, fallback), *CLOCK_RANGE)


def mode_clocks(cut: CutoffState, time: float) -> np.ndarray:
    """Per-mode clocks ``x_m`` (:mod:`dynamics.cosine`, "the modes' clocks") of the cosine flow
    of a set predictor, fitted on the window before the cutoff (:func:`_clocks_from_window`)
    over the theory ``time`` the window spans."""
    ends, rates = _cosine_window(cut)
    return _clocks_from_window(ends, rates, time)


def _cosine_window(cut: CutoffState) -> tuple[list[np.ndarray], np.ndarray]:
    """The window before the cutoff in the cosine flow's units: the theory's ``s`` at its two ends
    and the loss part of ``d log s_m / dt`` at unit clock (the mean of the two ends)."""
    dp = directset_config(cut.config)
    lam = 1.0 + cut.sigma2_filled
    sym = cut.hp.loss_terms == 2
    ends = [np.clip(v, 0.0, None) / lam for v in (cut.s_prev, cut.s)]
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.mean([cosine_mode_rhs(v, directset_p(v * lam, dp), sigma2=lam - 1.0, symmetric=sym) / v
                         for v in ends], axis=0)
    return ends, rates


def linear_mode_clocks(cut: CutoffState, time: float) -> np.ndarray:
    """Per-mode clocks of Eqns 11-12 for a trained linear predictor (units of
    :func:`_linear_units`): the loss part of ``d log s_m / dt`` is ``2 p_m (1 - lam_m p_m)``, the
    weight decay adds ``-2 eta`` (:func:`_clocks_from_window`)."""
    lam = 1.0 + cut.sigma2_filled
    c_p, _ = _linear_units(cut)
    rates = np.mean([2.0 * p * c_p * (1.0 - lam * p * c_p) for p in (cut.p_prev, cut.p)], axis=0)
    ends = [np.clip(v, 0.0, None) for v in (cut.s_prev, cut.s)]
    return _clocks_from_window(ends, rates, time, decay=2.0 * cut.hp.eta)


def cosine_modes_clocked(cut: CutoffState, context: Mapping[str, Any]) -> Forecast | None:
    """:func:`cosine_modes` with one clock per mode (:func:`mode_clocks`), fitted on the window
    before the cutoff (:func:`_clocked`), then integrated from the cutoff."""
    if not _set_only(cut):
        return None
    return _clocked(cut, lambda x: _directset_flow(cut, "cosine", x), mode_clocks, None)


def driven_mode_clocks(cut: CutoffState, time: float) -> np.ndarray:
    """Per-mode clocks of the cosine flow *with* the run's weight decay (THEORY.md section 5,
    "Weight decay and the modes' clocks"): the clock multiplies the loss drive only, so the drive
    a mode shows over the window is its measured log-rate plus the weight-decay rate,
    ``d_m = r_m + 2 eta``, and ``x_m = d_m / l_m`` with ``l_m`` the loss part of the flow's rate at
    unit clock. A mode whose drive the loss does not explain (``x_m <= 0``: it decays at the
    weight-decay rate or faster while the loss would grow it, or the reverse) gets the smallest
    clock, so it goes on decaying by weight decay alone instead of reviving at its neighbours'
    pace (:func:`mode_clocks` gives it the median clock); only a mode whose ``l_m`` is too small to
    tell (below 5 % over the window: at its fixed point) gets the median of the clocks found."""
    ends, loss = _cosine_window(cut)
    with np.errstate(invalid="ignore", divide="ignore"):
        drive = (np.log(ends[1]) - np.log(ends[0])) / time + 2.0 * cut.hp.eta
        x = drive / loss
    told = np.isfinite(loss) & (np.abs(loss * time) >= 0.05)
    undriven = told & np.isfinite(drive) & (x <= 0)
    ok = told & np.isfinite(x) & (x > 0)
    fallback = float(np.median(x[ok])) if ok.any() else 1.0
    x = np.where(ok, x, np.where(undriven, CLOCK_RANGE[0], fallback))
    return np.clip(x, *CLOCK_RANGE)


def cosine_modes_clocked_wd(cut: CutoffState, context: Mapping[str, Any]) -> Forecast | None:
    """The challenger of :func:`cosine_modes_clocked` (declared in :data:`analysis.questions.CHALLENGERS`
    before it was scored): the same cosine flow with the run's weight decay ``eta``
    (:mod:`analysis.hparams`) and the clocks of :func:`driven_mode_clocks`."""
    if not _set_only(cut):
        return None
    eta = cut.hp.eta
    return _clocked(cut, lambda x: _directset_flow(cut, "cosine", x, cosine_eta=eta),
                    driven_mode_clocks, None)


def _clocked(cut: CutoffState, flow_of: Callable[[np.ndarray], Callable[..., np.ndarray]],
             clocks_of: Callable[[CutoffState, float], np.ndarray], p: np.ndarray | None) -> Forecast:
    """Per-mode clocks fitted on the window before the cutoff at the nominal time (the clocks
    absorb the run's time factor), then the flow integrated from the cutoff."""
    a = cut.hp.a
    x = clocks_of(cut, a * (cut.step - cut.prev_step))
    t_eval = a * (cut.target_steps - cut.step).astype(np.float64)
    path = flow_of(x)(p, cut.s, float(t_eval[-1]), t_eval)
    info = {"clock_min": float(x.min()), "clock_median": float(np.median(x)), "clock_max": float(x.max())}
    return Forecast(_fates_of(path, float(path[0].max()), cut.tol), path, path[-1], info)


def l2_modes(cut: CutoffState, context: Mapping[str, Any], *, nominal: bool = False,
             clocks: np.ndarray | float = 1.0) -> Forecast | None:
    """Set predictors: Eqn 12 with ``p`` set, integrated. Trained linear predictor: Eqns 11-12
    integrated from the cutoff's measured ``(p, s)`` (:func:`_linear_flow`; its fixed points and
    basins alone are :func:`l2_basin`)."""
    if _set_only(cut):
        path, info = _fit_and_run(cut, _directset_flow(cut, "l2", clocks), (None, cut.s_prev), (None, cut.s),
                                  nominal=nominal)
        return Forecast(_fates_of(path, float(path[0].max()), cut.tol), path, path[-1], info)
    if cut.predictor != "linear" or cut.p is None or cut.p_prev is None:
        return None
    path, info = _fit_and_run(cut, _linear_flow(cut, clocks), (cut.p_prev, cut.s_prev), (cut.p, cut.s),
                              nominal=nominal)
    info["eta"] = cut.hp.eta
    return Forecast(_fates_of(path, float(path[0].max()), cut.tol), path, path[-1], info)


def l2_modes_clocked(cut: CutoffState, context: Mapping[str, Any]) -> Forecast | None:
    """Trained linear predictor: :func:`l2_modes` with one clock per mode
    (:func:`linear_mode_clocks`), fitted on the window before the cutoff (:func:`_clocked`)."""
    if cut.predictor != "linear" or cut.p is None or cut.p_prev is None:
        return None
    return _clocked(cut, lambda x: _linear_flow(cut, x), linear_mode_clocks, cut.p)


def l2_basin(cut: CutoffState, context: Mapping[str, Any]) -> Forecast | None:
    """Trained linear predictor: the fixed points of Eqns 11-16 with the basin rule -- mode ``j``
    survives iff ``eta < eta_c(sigma2_j)`` and its cutoff ``p_j`` lies above the unstable branch
    ``p*_-`` (units of :func:`_linear_units`); fates and ranks, no path (t -> infinity)."""
    if cut.predictor != "linear" or cut.p is None:
        return None
    p_minus, p_plus = fixed_point_branches(1.0, cut.hp.eta, cut.sigma2_filled)
    p = cut.p * _linear_units(cut)[0]
    fates = np.isfinite(p_plus) & (p > np.nan_to_num(p_minus, nan=np.inf))
    rank = np.where(fates, np.nan_to_num(p_plus) ** 2, -1.0 + np.tanh(p))
    return Forecast(fates=fates, rank_score=rank, info={"eta": cut.hp.eta})


def _linear_units(cut: CutoffState) -> tuple[float, float]:
    """Factors ``(c_p, c_s)`` that put a trained linear predictor's measured ``p`` and the
    cross-view ``s`` into the units of Eqns 11-16. An L2-loss run (``method.loss = l2``) is in
    them already (1, 1). Under the cosine loss the scales are free; the top mode is placed at its
    stable fixed point: ``p`` scaled so that its ``p`` is ``p*_+`` (Eqn 16), ``s`` so that it
    sits on the parabola ``s = p^2 / alpha_p`` (Eqn 14 with ``c = 0``)."""
    if cut.config.method.loss == "l2" or cut.p is None or cut.p[0] <= 0:
        return 1.0, 1.0
    _, p_plus = fixed_point_branches(1.0, cut.hp.eta, cut.sigma2_filled)
    if not np.isfinite(p_plus[0]):
        return 1.0, 1.0
    c_p = float(p_plus[0] / cut.p[0])
    s_top = float(cut.s[0] / (1.0 + cut.sigma2_filled[0]))
    return c_p, float((cut.p[0] * c_p) ** 2 / cut.hp.alpha_p / s_top) if s_top > 0 else 1.0


def _linear_flow(cut: CutoffState, x: np.ndarray | float = 1.0) -> Callable[..., np.ndarray]:
    """Eqns 11-12 per mode (``tau = 1``: SimSiam, or BYOL's EMA at its fixed point) for a trained
    linear predictor, from and to ``e = s (1 + sigma2)`` (as :func:`_directset_flow`), with ``p``
    the predictor's eigenvalue along the mode, in the units of :func:`_linear_units`. Integrated
    in ``(p, log s)`` (LSODA): ``d log s / dt = 2 [x p (1 - lam p) - eta]`` is bounded, so the
    stiff modes (measured ``sigma2`` up to ~60) neither overflow nor underflow. ``x``: the modes'
    clocks (:mod:`dynamics.cosine`; they multiply the loss part of ``d log s`` only)."""
    from scipy.integrate import solve_ivp

    lam = 1.0 + cut.sigma2_filled
    c_p, c_s = _linear_units(cut)
    alpha_p, eta = cut.hp.alpha_p, cut.hp.eta
    d = lam.size
    clock = np.broadcast_to(np.asarray(x, np.float64), lam.shape)

    def flow(p0: np.ndarray, e0: np.ndarray, t_end: float, t_eval: np.ndarray) -> np.ndarray:
        s0 = np.clip(e0, 0.0, None) / lam * c_s
        y0 = np.concatenate([np.asarray(p0, np.float64) * c_p,
                             np.log(np.maximum(s0, FLOOR * max(float(np.max(s0)), 1e-300)))])

        def rate(_t: float, y: np.ndarray) -> np.ndarray:
            p, s = y[:d], np.exp(y[d:])
            g = 1.0 - lam * p
            return np.concatenate([alpha_p * s * g - eta * p, 2.0 * (clock * p * g - eta)])

        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(rate, (0.0, t_end), y0, method="LSODA", t_eval=np.sort(t_eval),
                            rtol=1e-6, atol=1e-9)
        if not sol.success or not np.all(np.isfinite(sol.y)):
            raise FloatingPointError(sol.message)
        return np.exp(sol.y[d:].T) * lam / c_s

    return flow


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


#: Time constant of :func:`log_linear`'s damping, in snapshot windows (fixed in advance, not fitted).
LOG_LINEAR_TAU_WINDOWS = 5.0


def log_linear(cut: CutoffState, context: Mapping[str, Any]) -> Forecast:
    """The strongest theory-free per-mode forecaster from the same two snapshots: each mode's
    log-rate over the window before the cutoff, ``r_j = (log s_j - log s_prev_j) / window``,
    extrapolated with damping, ``log s_j(t) = log s_j + r_j tau (1 - exp(-(t - c) / tau))`` with
    ``tau`` = :data:`LOG_LINEAR_TAU_WINDOWS` windows, and capped at the top mode (no mode
    overtakes the cutoff's largest). A theory that only extrapolates each mode's early trend ties
    with it; one that knows where the flow saturates or turns beats it."""
    window = float(cut.step - cut.prev_step)
    tiny = FLOOR * float(np.max(cut.s))
    now = np.log(np.maximum(cut.s, tiny))
    before = np.log(np.maximum(cut.s_prev, tiny))
    rate = (now - before) / window
    tau = LOG_LINEAR_TAU_WINDOWS * window
    dt = (cut.target_steps - cut.step).astype(np.float64)[:, None]
    logs = now[None, :] + rate[None, :] * tau * (1.0 - np.exp(-dt / tau))
    logs = np.minimum(logs, logs[:, :1])  # capped at the top mode
    path = np.exp(logs)
    return Forecast(_fates_of(path, float(cut.s[0]), cut.tol), path, path[-1].copy(),
                    info={"tau_windows": LOG_LINEAR_TAU_WINDOWS})


def run_level_of(spectrum: np.ndarray, tol: float) -> dict[str, float]:
    """Surviving modes, participation ratio and RankMe (from the embedding's singular values,
    ``sqrt`` of ``F``'s eigenvalues) of one spectrum of ``F``."""
    v = np.clip(np.asarray(spectrum, dtype=np.float64), 0.0, None)
    return {"n_alive": float((~metrics.collapsed_mask(v, rel_tol=tol)).sum()),
            "pr": float(metrics.participation_ratio(v)),
            "rankme": float(metrics.effective_rank(np.sqrt(v), from_singular_values=True))}


def trend(cut: CutoffState, context: Mapping[str, Any]) -> Forecast:
    """Theory-free, for the orderings across runs only: each run-level quantity (surviving modes,
    participation ratio, RankMe) at the cutoff plus its linear trend since the previous snapshot,
    carried to the last step (surviving modes clipped to ``[0, d]``)."""
    now, before = run_level_of(cut.s, cut.tol), run_level_of(cut.s_prev, cut.tol)
    horizon = (cut.final_step - cut.step) / float(cut.step - cut.prev_step)
    out = {k: now[k] + (now[k] - before[k]) * horizon for k in now}
    out["n_alive"] = float(np.clip(out["n_alive"], 0, cut.s.size))
    return Forecast(run_level=out, info={"horizon_windows": horizon})


def top_k(cut: CutoffState, context: Mapping[str, Any]) -> Forecast | None:
    """An ORACLE, not a forecast: ``k`` is the measured final number of survivors of the other
    runs (the same setting's where there are any), which a forecaster at this run's cutoff cannot
    know. It shows how well the replicates agree (a ceiling), and no theory has to clear it."""
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
    "cosine_modes_clocked": cosine_modes_clocked,
    "cosine_modes_clocked_wd": cosine_modes_clocked_wd,
    "l2_modes": l2_modes,
    "l2_modes_nominal": partial(l2_modes, nominal=True),
    "l2_modes_clocked": l2_modes_clocked,
    "l2_basin": l2_basin,
    "directset_threshold": directset_threshold,
    "stepwise": stepwise,
}
#: Theory-free forecasters from the same information as the theories (the cutoff and the
#: snapshot before it).
BASELINES: dict[str, Callable[[CutoffState, Mapping[str, Any]], Forecast | None]] = {
    "persistence": persistence,
    "all_survive": all_survive,
    "all_collapse": all_collapse,
    "log_linear": log_linear,
    "trend": trend,
}
#: Forecasters that read what happens after the cutoff (other runs' outcomes): ceilings, not
#: forecasts, shown apart and never a bar a theory must clear.
ORACLES: dict[str, Callable[[CutoffState, Mapping[str, Any]], Forecast | None]] = {
    "top_k": top_k,
}
FORECASTERS = {**THEORIES, **BASELINES, **ORACLES}


def kind_of(name: str) -> str:
    """``theory``, ``baseline`` or ``oracle``."""
    return "theory" if name in THEORIES else "oracle" if name in ORACLES else "baseline"
