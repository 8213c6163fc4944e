"""Exact results for the per-mode dynamics (Section 3, Eqns 11-17).

Notation: ``lam_s = 1 + sigma2``; fixed ``tau`` unless stated.

- Collapse threshold: ``eta_c = tau^2 / (4 (1+sigma2))``; above it every mode collapses.
- Fixed points of the parabola flow (Eqn 16):
  ``p*_+- = [tau +- sqrt(tau^2 - 4 eta (1+sigma2))] / (2 (1+sigma2))``.
- Invariant (Eqn 14): ``c = s - p^2 / alpha_p`` obeys ``dc/dt = -2 eta c`` exactly, so
  ``c(t) = c(0) exp(-2 eta t)``. **Sign convention**: ``c > 0`` means the mode lies *above* the
  parabola ``s = p^2 / alpha_p`` (more ``s`` than the parabola), ``c < 0`` below it.
- Basins (:func:`classify_basin`): which starts collapse (``s -> 0``) and which converge to
  ``p*_+``; see that function for the exact rule used in each regime.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from ._validate import check_finite, check_nonnegative, check_positive

__all__ = [
    "collapse_threshold",
    "fixed_point_branches",
    "fixed_points",
    "parabola_flow",
    "parabola_flow_slope",
    "invariant_c",
    "invariant_c_at",
    "s_from_invariant",
    "ema_tau_on_parabola",
    "mode_jacobian",
    "FixedPoint",
    "fixed_point_stability",
    "separatrix",
    "BasinPrediction",
    "classify_basin",
    "ON_PARABOLA_RTOL",
]

#: A start with ``|c0| <= ON_PARABOLA_RTOL * max(s0, p0^2/alpha_p)`` counts as on the parabola.
ON_PARABOLA_RTOL = 1e-9
_ZERO = 1e-12  # eigenvalues with |Re| below this (times the scale) count as zero


# ----------------------------------------------------------------------------- closed forms
def collapse_threshold(tau, sigma2):
    """``eta_c = tau^2 / (4 (1 + sigma2))`` (Section 3, Eqn 16): for ``eta > eta_c`` the only
    fixed point of the parabola flow is ``p = 0`` and every mode collapses."""
    tau = check_finite("tau", tau)
    sigma2 = check_nonnegative("sigma2", sigma2)
    return tau ** 2 / (4.0 * (1.0 + sigma2))


def fixed_point_branches(tau, eta, sigma2) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``(p*_-, p*_+)`` of Eqn 16, NaN where ``eta > eta_c``.

    ``p*_-`` is computed as ``2 eta / (tau + sqrt(tau^2 - 4 eta lam_s))`` (the same number as the
    textbook formula, since ``p*_- p*_+ = eta / lam_s``, but free of cancellation for small eta);
    at ``eta = 0``: ``p*_- = 0`` and ``p*_+ = tau / (1 + sigma2)``.
    """
    tau = check_positive("tau", tau)
    eta = check_nonnegative("eta", eta)
    lam = 1.0 + check_nonnegative("sigma2", sigma2)
    disc = tau ** 2 - 4.0 * eta * lam
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    return 2.0 * eta / (tau + root), (tau + root) / (2.0 * lam)


def fixed_points(tau: float, eta: float, sigma2: float) -> tuple[float, float] | None:
    """``(p*_-, p*_+)`` of the parabola flow (Eqn 16) for scalar hyperparameters, or ``None``
    when ``eta > eta_c = tau^2/(4(1+sigma2))`` (then only ``p = 0`` is a fixed point). At
    ``eta = eta_c`` both coincide at ``tau / (2 (1+sigma2))``. For arrays use
    :func:`fixed_point_branches`."""
    for name, v in (("tau", tau), ("eta", eta), ("sigma2", sigma2)):
        if np.ndim(v) != 0:
            raise ValueError(f"{name}: must be a scalar (use fixed_point_branches for arrays)")
    pm, pp = fixed_point_branches(tau, eta, sigma2)
    if np.isnan(pp):
        return None
    return float(pm), float(pp)


def parabola_flow(p, *, tau, eta, sigma2):
    """Eqn 16: ``dp/dt = p^2 [tau - (1+sigma2) p] - eta p`` on the parabola ``s = p^2/alpha_p``
    (``= -(1+sigma2) p (p - p*_-)(p - p*_+)``)."""
    return p ** 2 * (tau - (1.0 + sigma2) * p) - eta * p


def parabola_flow_slope(p, *, tau, eta, sigma2):
    """``d/dp`` of Eqn 16: ``2 tau p - 3 (1+sigma2) p^2 - eta`` (negative: stable on the
    parabola)."""
    return 2.0 * tau * p - 3.0 * (1.0 + sigma2) * p ** 2 - eta


def invariant_c(p, s, alpha_p):
    """Eqn 14: ``c = s - p^2 / alpha_p``. Sign convention: ``c > 0`` above the parabola
    ``s = p^2/alpha_p``, ``c < 0`` below it. Conserved at ``eta = 0``; in general
    ``c(t) = c(0) exp(-2 eta t)`` (:func:`invariant_c_at`), for fixed or EMA-driven ``tau``."""
    return s - p ** 2 / check_positive("alpha_p", alpha_p)


def invariant_c_at(c0, eta, t):
    """Predicted evolution of the invariant (Eqn 14): ``c(t) = c(0) exp(-2 eta t)``."""
    return c0 * np.exp(-2.0 * eta * t)


def s_from_invariant(p, c0, *, alpha_p, eta, t):
    """Eqn 14 solved for ``s``: ``s(t) = p(t)^2 / alpha_p + exp(-2 eta t) c0``."""
    return p ** 2 / check_positive("alpha_p", alpha_p) + invariant_c_at(c0, eta, t)


def ema_tau_on_parabola(t, p, beta):
    """Eqn 15: ``tau(t) = beta exp(-beta t) / p(t) * int_0^t p(t') exp(beta t') dt'``, the
    EMA-driven ``tau`` of a mode that stays on the parabola (``c = 0``) with ``tau(0) = 0``,
    evaluated from a sampled ``p(t)`` (axis 0 is time) by the trapezoid rule in the stable
    recursive form ``J_k = J_{k-1} e^{-beta dt} + dt/2 (p_{k-1} e^{-beta dt} + p_k)``."""
    t = np.asarray(t, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    beta = check_positive("beta", beta)
    J = np.zeros_like(p)
    for k in range(1, len(t)):
        decay = np.exp(-beta * (t[k] - t[k - 1]))
        J[k] = J[k - 1] * decay + 0.5 * (t[k] - t[k - 1]) * (p[k - 1] * decay + p[k])
    return beta * J / p


# ----------------------------------------------------------------------------- stability
def mode_jacobian(p, s, *, alpha_p, eta, sigma2, tau):
    """Jacobian of Eqns 11-12 in ``(p, s)`` (fixed tau), shape ``(..., 2, 2)``:

    ```
    [[-alpha_p s lam_s - eta,        alpha_p (tau - lam_s p)    ],
     [2 s (tau - 2 lam_s p),         2 (p (tau - lam_s p) - eta)]]
    ```
    """
    lam = 1.0 + np.asarray(sigma2, dtype=np.float64)
    p, s, alpha_p, eta, tau, lam = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64)
                                                          for x in (p, s, alpha_p, eta, tau, lam)))
    g = tau - lam * p
    J = np.empty(p.shape + (2, 2))
    J[..., 0, 0] = -alpha_p * s * lam - eta
    J[..., 0, 1] = alpha_p * g
    J[..., 1, 0] = 2.0 * s * (tau - 2.0 * lam * p)
    J[..., 1, 1] = 2.0 * (p * g - eta)
    return J


def _kind(values: np.ndarray, scale: float) -> str:
    re = np.real(values)
    tol = _ZERO * max(1.0, scale)
    if np.any(np.abs(re) <= tol):
        return "non-hyperbolic"
    if np.all(re < 0):
        return "stable"
    if np.all(re > 0):
        return "unstable"
    return "saddle"


def _kind_1d(slope: float, curvature: float, scale: float) -> str:
    tol = _ZERO * max(1.0, scale)
    if slope < -tol:
        return "stable"
    if slope > tol:
        return "unstable"
    return "semi-stable" if abs(curvature) > tol else "non-hyperbolic"


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point of Eqns 11-12 on the parabola ``s = p^2/alpha_p`` (or the origin).

    ``eigenvalues``: of the 2-D Jacobian (:func:`mode_jacobian`); ``kind``: ``"stable"``,
    ``"unstable"``, ``"saddle"`` or ``"non-hyperbolic"`` (a zero eigenvalue: at ``eta = 0`` the
    fixed points form the lines ``s = 0`` and ``p = tau/(1+sigma2)``). ``slope_1d`` and
    ``kind_1d``: the same for the 1-D parabola flow of Eqn 16 (``"semi-stable"`` when the slope
    vanishes but the curvature does not, e.g. ``p = 0`` at ``eta = 0``)."""

    name: str
    p: float
    s: float
    eigenvalues: np.ndarray
    kind: str
    slope_1d: float
    kind_1d: str


def fixed_point_stability(*, tau: float, eta: float, sigma2: float, alpha_p: float) -> list[FixedPoint]:
    """The fixed points of the per-mode system with their stability, in the 2-D ``(p, s)``
    flow and on the parabola (Eqn 16): the origin, and ``p*_-``, ``p*_+`` when they exist
    (one double point ``p_double`` at ``eta = eta_c``; at ``eta = 0`` ``p*_-`` is the origin)."""
    alpha_p = float(check_positive("alpha_p", alpha_p))
    pm, pp = fixed_point_branches(tau, eta, sigma2)
    pm, pp = float(pm), float(pp)
    lam = 1.0 + float(sigma2)
    points = [("origin", 0.0)]
    if not np.isnan(pp):
        if pm == pp:
            points.append(("p_double", pp))
        else:
            if pm > 0:
                points.append(("p_minus", pm))
            points.append(("p_plus", pp))
    out = []
    for name, p in points:
        s = p * p / alpha_p
        J = mode_jacobian(p, s, alpha_p=alpha_p, eta=eta, sigma2=sigma2, tau=tau)
        ev = np.linalg.eigvals(J)
        ev = ev[np.argsort(np.real(ev))]
        scale = float(np.abs(J).max())
        slope = float(parabola_flow_slope(p, tau=tau, eta=eta, sigma2=sigma2))
        curvature = 2.0 * float(tau) - 6.0 * lam * p
        out.append(FixedPoint(name, p, s, ev, _kind(ev, scale), slope, _kind_1d(slope, curvature, 1.0)))
    return out


# ----------------------------------------------------------------------------- basins
@dataclass(frozen=True)
class BasinPrediction:
    """Predicted fate of each start (arrays of the broadcast shape).

    ``survives``: True when the mode converges to ``p*_+`` with ``s -> s_inf > 0`` (at
    ``eta = 0``: ``p -> tau/(1+sigma2)``), False when it collapses (``s -> 0``).
    ``p_inf``, ``s_inf``: the predicted limit. ``margin``: ``log(s0 / S(p0))`` where
    ``s = S(p)`` is the basin boundary through the start's ``p`` (positive on the surviving
    side; ``+inf`` where no boundary lies below the start, ``-inf`` where collapse is certain,
    e.g. ``eta > eta_c`` or ``s0 = 0``). Points with small ``|margin|`` lie near the boundary, where
    the time to decide grows without bound."""

    survives: np.ndarray
    p_inf: np.ndarray
    s_inf: np.ndarray
    margin: np.ndarray


def _log_ratio(s0: np.ndarray, log_S: np.ndarray) -> np.ndarray:
    """``log(s0) - log_S``: ``-inf`` where ``s0 = 0`` (collapse is certain), ``+inf`` where
    ``log_S = -inf < log(s0)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s0 > 0, np.log(s0) - log_S, -np.inf)


def _basin_no_decay(p0, s0, alpha_p, lam, tau):
    """``eta = 0`` (exact, any start). ``c`` is conserved, so the mode moves on the curve
    ``s = p^2/alpha_p + c`` while ``p`` relaxes monotonically toward ``p* = tau/lam`` as long as
    ``s > 0``. It survives iff ``s`` stays positive on the way from ``p0`` to ``p*``:
    ``p0 > 0``: ``s0 > 0`` and ``s_inf = s0 + (p*^2 - p0^2)/alpha_p > 0``; ``p0 <= 0``: the path
    crosses ``p = 0`` where ``s = c``, so ``c > 0``. A collapsing mode stops where the curve
    meets ``s = 0``: ``p -> sign(p0) sqrt(-alpha_p c)`` (``p0`` itself when ``s0 = 0``).
    Boundary: ``S(p) = p^2/alpha_p`` for ``p <= 0``, ``max(0, (p^2 - p*^2)/alpha_p)`` for ``p > 0``."""
    pstar = tau / lam
    c = s0 - p0 ** 2 / alpha_p
    s_inf = s0 + (pstar ** 2 - p0 ** 2) / alpha_p
    survives = np.where(p0 > 0, (s0 > 0) & (s_inf > 0), c > 0)
    p_stop = np.where(s0 == 0, p0, np.sign(p0) * np.sqrt(np.maximum(-alpha_p * c, 0.0)))
    S = np.where(p0 > 0, np.maximum((p0 ** 2 - pstar ** 2) / alpha_p, 0.0), p0 ** 2 / alpha_p)
    with np.errstate(divide="ignore"):
        log_S = np.log(S)
    return survives, np.where(survives, pstar, p_stop), np.where(survives, s_inf, 0.0), _log_ratio(s0, log_S)


def _basin_forced_collapse(p0, s0):
    """``eta > eta_c`` (exact): ``(ds/dt)/(2s) = p (tau - lam p) - eta <= eta_c - eta < 0``, so
    ``s`` decays exponentially and ``p -> 0`` for every start."""
    z = np.zeros_like(p0)
    return np.zeros(p0.shape, bool), z, z, np.full(p0.shape, -np.inf)


def separatrix(*, alpha_p: float, eta: float, sigma2: float, tau: float,
               p_range: tuple[float, float], s_max: float, n_points: int = 20000,
               log_s: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The basin boundary for ``0 < eta <= eta_c``: the stable manifold of the saddle
    ``(p*_-, p*_-^2/alpha_p)`` of Eqns 11-12, as points ``(p, s)`` sorted by increasing ``p``.

    Computed by integrating the time-reversed flow in ``(p, log s)`` (reversed, the manifold
    attracts nearby trajectories, so this is numerically stable) from the saddle displaced by
    ``1e-6 p*_-`` along the eigenvector of the eigenvalue ``-2 eta`` (the direction transverse
    to the parabola), in both directions, with DOP853 (rtol 1e-11), until each branch leaves
    ``p_range x (0, s_max]``. The manifold is a graph ``s = S(p)`` (``p`` is monotone along it;
    checked). It crosses the parabola only at the saddle. The branches are resampled at
    ``n_points`` points evenly spaced in arc length of ``(p, log s)``; linear interpolation
    between them is then accurate to ~1e-5 in ``log S`` where ``S > 1e-9`` (measured against
    100000 points). ``log_s=True`` returns ``log S``
    (the lower branch reaches values of ``S`` below the float64 range).
    """
    pm, _ = fixed_point_branches(tau, eta, sigma2)
    pm = float(pm)
    if not (eta > 0 and np.isfinite(pm)):
        raise ValueError(f"eta: the separatrix exists for 0 < eta <= eta_c, got eta={eta}")
    lam = 1.0 + sigma2
    p_lo, p_hi = p_range
    u_max = np.log(s_max)
    u_cap = u_max + 20.0

    def reversed_flow(t, y):
        p, u = y
        g = tau - lam * p
        # trial steps may overshoot the box top before the event stops them; capping exp's
        # argument above the box keeps them finite without changing the flow inside the box
        return [-(alpha_p * np.exp(min(u, u_cap)) * g - eta * p), -2.0 * (p * g - eta)]

    def leaves(t, y):
        return min(y[0] - p_lo, p_hi - y[0], u_max - y[1])

    leaves.terminal = True
    v = np.array([eta, -(tau - 2.0 * lam * pm)])  # (J + 2 eta I) v = 0 in (p, log s)
    v *= 1e-6 * pm / abs(v[0])
    branches = []
    for sign in (-1.0, 1.0):
        y0 = np.array([pm, np.log(pm * pm / alpha_p)]) + sign * v
        t_max = 200.0 / eta + 200.0
        sol = solve_ivp(reversed_flow, (0.0, t_max), y0, method="DOP853", rtol=1e-11, atol=1e-12,
                        events=leaves, dense_output=True)
        if sol.status != 1:
            raise RuntimeError(f"separatrix branch did not leave the box by t = {t_max:g}: {sol.message}")
        # resample evenly in arc length of (p, log s), where linear interpolation is accurate
        tt = np.union1d(sol.t, np.linspace(0.0, sol.t[-1], 10 * n_points))
        Y = sol.sol(tt)
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(Y[0]), np.diff(Y[1])))])
        branches.append(sol.sol(np.interp(np.linspace(0.0, arc[-1], n_points), arc, tt)))
    left, right = branches if branches[0][0, -1] < branches[1][0, -1] else branches[::-1]
    P = np.concatenate([left[0][::-1], [pm], right[0]])
    U = np.concatenate([left[1][::-1], [np.log(pm * pm / alpha_p)], right[1]])
    if not np.all(np.diff(P) > 0):
        raise RuntimeError("separatrix is not a graph over p for these parameters")
    return P, (U if log_s else np.exp(U))


def _basin_bistable(p0, s0, alpha_p, lam, tau, eta):
    """``0 < eta <= eta_c``. Attractors: the origin and ``(p*_+, p*_+^2/alpha_p)``; boundary:
    the stable manifold of the saddle at ``p*_-`` (:func:`separatrix`).

    - On the parabola (``|c0|`` within ``ON_PARABOLA_RTOL``), where ``c`` stays 0 and Eqn 16 is
      the exact flow: survives iff ``p0 > p*_-`` (closed form).
    - Off the parabola: survives iff the start lies above the separatrix, ``s0 > S(p0)``. This is
      exact up to the accuracy of the computed manifold (relative ~1e-5 in ``s`` where
      ``S > 1e-9``, ~1e-3 in the deep minimum of its lower branch, ``S < 1e-40``); it is *not* the
      naive rule "``p0 > p*_-``", which ignores that ``c`` decays only at rate ``2 eta``.
    """
    a, e, l, t = float(alpha_p), float(eta), float(lam), float(tau)
    pm, pp = (float(x) for x in fixed_point_branches(t, e, l - 1.0))
    on = np.abs(s0 - p0 ** 2 / a) <= ON_PARABOLA_RTOL * np.maximum(s0, p0 ** 2 / a)
    P, log_S = separatrix(alpha_p=a, eta=e, sigma2=l - 1.0, tau=t,
                          p_range=(min(p0.min(), pm) - 1.0, max(p0.max(), pp) + 1.0),
                          s_max=2.0 * max(s0.max(), pp * pp / a, 1e-300), log_s=True)
    margin = _log_ratio(s0, np.interp(p0, P, log_S))  # beyond the ends: the box top
    survives = np.where(on, (p0 > pm) & (s0 > 0), margin > 0)
    return survives, np.where(survives, pp, 0.0), np.where(survives, pp * pp / a, 0.0), margin


def classify_basin(p0, s0, *, alpha_p, eta, sigma2, tau=1.0) -> BasinPrediction:
    """Predicted fate of Eqns 11-12 with fixed ``tau > 0`` from ``(p0, s0)`` (all arguments
    broadcast together).

    Rules (each exact, see the helpers):

    - ``eta = 0``: ``c = s - p^2/alpha_p`` is conserved (Eqn 14); a start above the parabola
      (``c > 0``) survives with ``s_inf = s0 + (p_inf^2 - p0^2)/alpha_p``; below it, the mode
      survives iff ``p0 > 0`` and that ``s_inf > 0``.
    - ``eta > eta_c = tau^2/(4(1+sigma2))``: every mode collapses.
    - ``0 < eta <= eta_c``: on the parabola, ``p0 < p*_-`` collapses and ``p0 > p*_-`` converges
      to ``p*_+`` (Eqn 16, closed form); off the parabola the boundary is the stable manifold of
      the saddle at ``p*_-``, computed numerically once per hyperparameter set
      (:func:`separatrix`).
    - ``s0 = 0`` always collapses (``s = 0`` is invariant).
    """
    named = {"p0": check_finite("p0", p0), "s0": check_nonnegative("s0", s0),
             "alpha_p": check_positive("alpha_p", alpha_p), "eta": check_nonnegative("eta", eta),
             "sigma2": check_nonnegative("sigma2", sigma2), "tau": check_positive("tau", tau)}
    try:
        shape = np.broadcast_shapes(*(v.shape for v in named.values()))
    except ValueError:
        raise ValueError(f"{', '.join(named)}: shapes cannot be broadcast together "
                         f"({', '.join(f'{k} {v.shape}' for k, v in named.items())})") from None
    b = {k: np.broadcast_to(v, shape).ravel() for k, v in named.items()}
    lam = 1.0 + b["sigma2"]
    eta_c = b["tau"] ** 2 / (4.0 * lam)
    keys = np.stack([b["alpha_p"], b["eta"], lam, b["tau"]], axis=1)
    uniq, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    out = [np.empty(len(group), bool), np.empty(len(group)), np.empty(len(group)), np.empty(len(group))]
    for g, (a, e, l, t) in enumerate(uniq):
        idx = np.flatnonzero(group == g)
        p, s = b["p0"][idx], b["s0"][idx]
        if e == 0:
            res = _basin_no_decay(p, s, a, l, t)
        elif e > eta_c[idx[0]]:
            res = _basin_forced_collapse(p, s)
        else:
            res = _basin_bistable(p, s, a, l, t, e)
        for o, r in zip(out, res):
            o[idx] = r
    return BasinPrediction(*(o.reshape(shape) for o in out))
