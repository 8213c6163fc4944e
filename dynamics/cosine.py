"""Directly set predictors (DirectSet / DirectPred / DirectCopy) under the negative-cosine loss,
with the plain L2 loss for comparison (THEORY.md section 5, "Real runs use the cosine loss and a
max-normalised predictor").

Setting
-------
Linear online network ``W`` (n2 x n1); a sample ``x ~ N(0, X)`` and two views ``x1 = x + n1``,
``x2 = x + n2`` with ``n1, n2 ~ N(0, X')`` (so ``X`` and ``X'`` are those of THEORY section 1).
The target is the online network itself behind a stop-gradient (SimSiam; an EMA target with
``Wa = tau W``, assumption A1, changes nothing for the cosine loss since ``cos(q, tau z) =
cos(q, z)`` for ``tau > 0``). The predictor is *set*, not trained: with ``e_j, u_j`` the
eigenpairs of the correlation of the online outputs of both views, ``W (X + X') W^T`` (what
DirectPred's running estimate converges to),

    ``Wp = sum_j p_j u_j u_j^T``,  ``p_j = max((e_j / e_max)^alpha + eps, floor)``   (DirectSet(alpha))

(:func:`directset_p`; ``alpha = 1/2`` DirectPred, ``alpha = 1`` DirectCopy). ``Wp`` is a constant
of the backward pass. Losses per pair, ``q = Wp W x1``, ``z = stopgrad(W x2)``:

- cosine: ``L = -<q, z> / (|q| |z|)``;
- L2 (Eqn 1): ``L = 1/2 |q - z|^2``.

The symmetrised loss adds the same term with the views swapped; in expectation it doubles the loss
gradient (``symmetric=True`` multiplies the loss part of each right-hand side by 2, not the weight
decay). Weight decay ``eta`` adds ``-eta W``.

Derivation (per mode)
---------------------
Assume ``X = diag(x_k)`` and ``X' = diag(x'_k)`` in the basis of the right singular vectors of
``W = U diag(w) V^T`` (A2 is ``X = I, X' = sigma2 I``; below ``X = I`` and ``X' = diag(sigma2_j)``,
then the general diagonal case).
With ``y_i = V^T x_i``, ``a = diag(w) y1`` (online outputs in the ``U`` basis), ``b = diag(w) y2``,
``q = p * a``; per mode ``E[a_j^2] = s_j lam_j``, ``E[a_j b_j] = s_j``, ``lam_j = 1 + sigma2_j``,
where ``s_j = w_j^2`` are the eigenvalues of ``F = W X W^T`` (THEORY's ``F``) and
``e_j = s_j lam_j``.

*Cosine.* ``-dL/dq = (z_hat - c q_hat) / |q|`` with ``c = cos(q, z)``, so ``-dL/dW = Wp (z_hat -
c q_hat) x1^T / |q|``. Flipping the sign of ``y_m`` in both views leaves the law of the sample
unchanged and flips the off-diagonal entries ``m != k`` of ``U^T E[...] V``, and the part along
the complement of ``V`` is independent of everything else: the expected flow is diagonal, the
bases ``U, V`` stay fixed and ``Wp`` keeps commuting with ``F``. Exactly, per mode:

    ``ds_m/dt = 2 p_m E[ a_m (z_hat_m - c q_hat_m) / |q| ] - 2 eta s_m``.

Mean field (replace ``|q|^2``, ``|z|^2``, ``<q, z>`` by their means ``Q = sum_j p_j^2 s_j lam_j``,
``Z = sum_j s_j lam_j``, ``P1 = sum_j p_j s_j``; the fluctuations are O(1/sqrt(d_eff))):

    ``ds_m/dt = 2 p_m s_m [1 - lam_m p_m P1 / Q] / sqrt(Q Z) - 2 eta s_m``     (:func:`cosine_mode_rhs`)

*The modes' clocks.* With ``X = diag(x_k)`` (``sigma2_k = x'_k / x_k``) the same steps give every
flow above times ``x_m``: ``s_m = w_m^2 x_m`` and ``dw_m/dt`` is a mean over ``x1_m = sqrt(x_m)
y_m``, so ``ds_m/dt = 2 w_m x_m dw_m/dt`` carries one more ``x_m`` than the unit-variance
computation; the weight decay term (``-2 eta s_m``) does not. So a mode's speed is set by its
input variance, not by ``s_m`` alone: on the network of ``tests/test_scorecard.py`` (``x`` over
1.5 decades) the dying modes, with ``x`` 0.03-0.1, decay 10-30 times slower than the flow at
``x = 1`` says, which is what an earlier version of this project saw as a "floor" of SGD (the
per-step SGD rate of ``s_m`` at a mid-run state matches ``x_m`` times the exact Monte-Carlo rate,
tested). The argument ``x`` of every right-hand side below carries these clocks (default 1). In
a deep network the analogue of ``x_m`` is the kernel (NTK) along the mode, not a known input
variance; :mod:`analysis.forecasters` fits it per mode on the window before the cutoff.

With ``lam_j = 1 + sigma2`` for every mode and ``p_j = s_j^alpha`` this is THEORY's candidate
``2 s^(alpha+1) [1 - s^alpha S_(alpha+1)/S_(2alpha+1)] / ((1+sigma2) sqrt(S_1 S_(2alpha+1)))``.
The second-order delta method (Gaussian moments of ``|q|^2, |z|^2, <q,z>`` and their covariances
with the mode's own terms) gives the first finite-size correction, :func:`cosine_mode_rhs_corrected`.
Monte-Carlo of the exact expectation (:func:`cosine_mode_rhs_mc`) at a spectrum spread over two
decades, ``sigma2 = 0.25``, DirectPred (``eps = 0.1``): the mean-field error is ~5/d of the
natural rate unit ``2 p_m s_m / sqrt(Q Z)`` (0.30, 0.15, 0.076, 0.042 at
d = 16, 32, 64, 128: cleanly 1/d); relative to the largest rate of the spectrum that is 16% at
d = 64 and 9% at d = 128 (rates of middle modes are small differences). The corrected form is
~5x closer (0.056, 0.029, 0.014 at d = 16, 32, 64; at d >= 64 the Monte-Carlo noise is reached).

Exact consequences (not mean-field):

- ``sum_m`` of the cosine loss part is 0: the loss is scale-free in the online ``W``, so
  ``<dL/dW, W> = 0`` per sample and ``||W||_F^2 = sum_m s_m / x_m`` is conserved by the gradient
  flow (``exp(-2 eta t)`` with weight decay). In discrete SGD it grows by ``lr^2 |g|^2`` per step.
- The isotropic state (equal ``s_m`` on a support, ``sigma2`` equal there) is a fixed point of the
  exact expected flow (symmetry), whatever the scale; with ``eta > 0`` it decays as a whole while
  keeping its shape.
- Fixed points of the mean-field flow: survivors obey ``lam_m p_m = kappa`` (one constant); so
  with isotropic augmentation every surviving mode ends at the same ``s`` (scale free, ``sigma2``
  free: THEORY's claim holds, :func:`cosine_fixed_point`). With mode-dependent augmentation the end
  state is not isotropic: ``p_m = kappa / lam_m``, i.e. ``e_m / e_max = (kappa / lam_m - eps)^(1/alpha)``
  with ``kappa = lam_min (1 + eps)`` (the least augmented surviving mode is the top one), and a
  mode collapses iff ``lam_m max(eps, floor) >= kappa``: eps > 0 makes DirectPred discard the
  most augmentation-sensitive directions.

*L2.* The loss is quadratic, so the per-mode equation is exact (no mean field): Eqn 12 with ``p``
set, ``ds_m/dt = 2 p_m s_m [tau - lam_m p_m] - 2 eta s_m`` (:func:`l2_mode_rhs`). With the
max-normalised predictor the top mode has ``p = 1 + eps``; for ``lam (1 + eps) > tau`` (any
augmentation, or ``eps > 0``) it shrinks, every ratio ``s_m / s_max`` rises to 1 (isotropic
shape, :func:`l2_directset_rate`) and then every mode decays as
``exp(2 (1+eps)(tau - lam (1+eps)) t - 2 eta t)``: total collapse, ``W -> 0``. The un-normalised
``p = s^alpha`` instead has the fixed point ``s* = lam^(-1/alpha)`` (THEORY's L2 candidate, exact).

Ground truth: :func:`simulate_directset_sgd` trains the actual linear network by minibatch SGD
with hand-derived float64 gradients (checked against autograd in the tests).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from .linalg import eigh_desc

from ._validate import check_finite, check_nonnegative, check_positive
from .integrate import NonFiniteStateError, integrate, save_grid
from .rhs import mode_rhs
from .sgd import (DirectPredConfig, directpred_wp, directset_p, minibatch_gradients, minibatch_loss,
                  psd_sqrt, running_correlation, sample_views)

__all__ = [
    "directset_p",
    "cosine_mode_rhs",
    "cosine_mode_rhs_corrected",
    "cosine_mode_rhs_mc",
    "l2_mode_rhs",
    "MODE_RHS",
    "CosineFixedPoint",
    "cosine_fixed_point",
    "l2_directset_rate",
    "DirectSetModeTrajectory",
    "integrate_directset_modes",
    "cosine_loss_and_gradient",
    "l2_loss_and_gradient",
    "LOSS_GRADIENTS",
    "DirectSetSGDTrajectory",
    "simulate_directset_sgd",
    "F_SOURCES",
]


# ----------------------------------------------------------------------------- predictor
def _lam(s: np.ndarray, sigma2) -> np.ndarray:
    return np.broadcast_to(1.0 + np.asarray(sigma2, dtype=np.float64), s.shape)


def _loss_factor(symmetric: bool) -> float:
    return 2.0 if symmetric else 1.0


def _clock(s: np.ndarray, x) -> np.ndarray:
    """The modes' clocks ``x_m`` (input variance along each mode; module docstring), broadcast."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(~np.isfinite(x)) or np.any(x < 0):
        raise ValueError(f"x: the modes' clocks must be finite and >= 0, got {x!r}")
    return np.broadcast_to(x, np.shape(s))


# ----------------------------------------------------------------------------- right-hand sides
def cosine_mode_rhs(s, p, *, sigma2, eta: float = 0.0, tau: float = 1.0,
                    symmetric: bool = False, x=1.0) -> np.ndarray:
    """Mean-field cosine-loss flow (module docstring), modes on the last axis:
    ``ds_m/dt = g x_m 2 p_m s_m [1 - lam_m p_m P1/Q] / sqrt(Q Z) - 2 eta s_m`` with
    ``Q = sum p^2 s lam``, ``Z = sum s lam``, ``P1 = sum p s``, ``lam = 1 + sigma2`` (scalar or per
    mode), ``g = 2`` for the symmetrised loss and ``x_m`` the input variance along the mode (the
    mode's clock, 1 for ``X = I``). ``tau`` (A1) has no effect for ``tau > 0``."""
    s = np.asarray(s, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    lam = _lam(s, sigma2)
    Q = np.sum(p * p * s * lam, axis=-1, keepdims=True)
    Z = np.sum(s * lam, axis=-1, keepdims=True)
    P1 = np.sum(p * s, axis=-1, keepdims=True)
    den = np.sqrt(Q * Z)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.where(den > 0, 2.0 * p * s * (1.0 - lam * p * P1 / Q) / den, 0.0)
    return _loss_factor(symmetric) * _clock(s, x) * loss - 2.0 * eta * s


def _delta_term(Eh, EhA, EhB, EhC, mom, al, be, ga):
    """Second-order delta method for ``E[h A^al B^be C^ga]`` around the means (first finite-size
    correction; terms of relative order 1/d^2 dropped)."""
    A, B, C, vA, vB, vC, cAB, cAC, cBC = mom
    second = (al * (al - 1) / 2 * vA / A ** 2 + be * (be - 1) / 2 * vB / B ** 2
              + ga * (ga - 1) / 2 * vC / C ** 2 + al * be * cAB / (A * B)
              + al * ga * cAC / (A * C) + be * ga * cBC / (B * C))
    return A ** al * B ** be * C ** ga * (Eh + al * EhA / A + be * EhB / B + ga * EhC / C
                                          + Eh * second)


def cosine_mode_rhs_corrected(s, p, *, sigma2, eta: float = 0.0, tau: float = 1.0,
                              symmetric: bool = False, x=1.0) -> np.ndarray:
    """Cosine-loss flow with the first finite-size correction to :func:`cosine_mode_rhs`.

    ``ds_m/dt = 2 p_m (T1_m - p_m T2_m)`` with ``T1 = E[a_m b_m A^(-1/2) B^(-1/2)]`` and
    ``T2 = E[a_m^2 C A^(-3/2) B^(-1/2)]``, ``A = |q|^2``, ``B = |z|^2``, ``C = <q, z>``, each by
    the second-order delta method using the Gaussian moments (per mode ``j``):
    ``Var a^2 = 2 s^2 lam^2``, ``Cov(a^2, b^2) = 2 s^2``, ``Var ab = s^2 (lam^2 + 1)``,
    ``Cov(a^2, ab) = 2 s^2 lam``. Error O(1/d_eff^2) instead of O(1/d_eff). ``x``: the modes'
    clocks, as in :func:`cosine_mode_rhs`."""
    s = np.asarray(s, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    lam = _lam(s, sigma2)
    S = lambda v: np.sum(v, axis=-1, keepdims=True)  # noqa: E731
    s2 = s * s
    mom = (S(p * p * s * lam), S(s * lam), S(p * s),
           S(2 * p ** 4 * s2 * lam * lam), S(2 * s2 * lam * lam), S(p * p * s2 * (lam * lam + 1)),
           S(2 * p * p * s2), S(2 * p ** 3 * s2 * lam), S(2 * p * s2 * lam))
    with np.errstate(invalid="ignore", divide="ignore"):
        T1 = _delta_term(s, 2 * p * p * s2 * lam, 2 * s2 * lam, p * s2 * (lam * lam + 1), mom,
                         -0.5, -0.5, 0.0)
        T2 = _delta_term(s * lam, 2 * p * p * s2 * lam * lam, 2 * s2, 2 * p * s2 * lam, mom,
                         -1.5, -0.5, 1.0)
        loss = np.where(mom[0] * mom[1] > 0, 2.0 * p * (T1 - p * T2), 0.0)
    return _loss_factor(symmetric) * _clock(s, x) * loss - 2.0 * eta * s


def cosine_mode_rhs_mc(s, p, *, sigma2, n_samples: int = 100_000, seed: int = 0,
                       chunk: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo estimate of the *exact* expected per-mode cosine flow (no weight decay, one
    ordered pair): ``2 p_m E[a_m (z_hat_m - c q_hat_m)/|q|]`` with ``a = sqrt(s) y1``,
    ``b = sqrt(s) y2``, ``y_i = u + sqrt(sigma2) n_i`` (``u, n_i ~ N(0, I)``). Returns
    ``(mean, standard error)`` per mode. 1-D ``s`` only."""
    s = check_nonnegative("s", s)
    p = check_finite("p", p)
    if s.ndim != 1 or p.shape != s.shape:
        raise ValueError(f"s, p: expected two 1-D arrays of one shape, got {s.shape}, {p.shape}")
    sig = np.sqrt(np.broadcast_to(check_nonnegative("sigma2", sigma2), s.shape))
    rng = np.random.default_rng(seed)
    d = s.size
    acc, acc2, n = np.zeros(d), np.zeros(d), 0
    root = np.sqrt(s)
    while n < n_samples:
        m = min(chunk, n_samples - n)
        u = rng.standard_normal((m, d))
        a = root * (u + sig * rng.standard_normal((m, d)))
        b = root * (u + sig * rng.standard_normal((m, d)))
        q = p * a
        nq = np.linalg.norm(q, axis=1, keepdims=True)
        nb = np.linalg.norm(b, axis=1, keepdims=True)
        c = np.sum(q * b, axis=1, keepdims=True) / (nq * nb)
        g = 2.0 * p * a * (b / nb - c * q / nq) / nq
        acc += g.sum(0)
        acc2 += (g * g).sum(0)
        n += m
    mean = acc / n
    return mean, np.sqrt(np.maximum(acc2 / n - mean * mean, 0.0) / n)


def l2_mode_rhs(s, p, *, sigma2, eta: float = 0.0, tau: float = 1.0,
                symmetric: bool = False, x=1.0) -> np.ndarray:
    """L2 loss with a set predictor: Eqn 12 with ``p`` given, exact per mode,
    ``ds/dt = g x 2 p s [tau - (1+sigma2) p] - 2 eta s`` (``g = 2`` symmetrised, ``x`` the modes'
    clocks as in :func:`cosine_mode_rhs`), evaluated by :func:`dynamics.rhs.mode_rhs` (Eqn 12
    without weight decay, times ``g x``, minus ``2 eta s``)."""
    s = np.asarray(s, np.float64)
    loss = mode_rhs(np.asarray(p, np.float64), s, tau, alpha_p=1.0, eta=0.0, sigma2=sigma2)[1]
    return _loss_factor(symmetric) * _clock(s, x) * loss - 2.0 * eta * s


#: Per-mode right-hand sides ``f(s, p, *, sigma2, eta, tau, symmetric) -> ds/dt`` by loss name.
MODE_RHS: dict[str, Callable[..., np.ndarray]] = {
    "cosine": cosine_mode_rhs,
    "cosine-corrected": cosine_mode_rhs_corrected,
    "l2": l2_mode_rhs,
}


def _rhs_of(loss: str) -> Callable[..., np.ndarray]:
    try:
        return MODE_RHS[loss]
    except KeyError:
        raise ValueError(f"loss: must be one of {sorted(MODE_RHS)}, got {loss!r}") from None


# ----------------------------------------------------------------------------- fixed points
@dataclass(frozen=True)
class CosineFixedPoint:
    """End state of the mean-field cosine flow with a DirectSet predictor (per mode):
    ``survives``; ``e_rel = e_m / e_max`` and ``s_rel = s_m / s_max`` (0 for collapsed modes);
    ``p`` the predictor eigenvalue there; ``kappa`` the common value of ``lam_m p_m``."""

    survives: np.ndarray
    e_rel: np.ndarray
    s_rel: np.ndarray
    p: np.ndarray
    kappa: float


def cosine_fixed_point(sigma2, cfg: DirectPredConfig = DirectPredConfig(),
                       present=None) -> CosineFixedPoint:
    """Stable fixed point of :func:`cosine_mode_rhs` with ``p = directset_p(e)``, ``e = s lam``,
    at ``eta = 0`` (weight decay only rescales the cosine flow's state, not its shape).

    Survivors satisfy ``lam_m p_m = kappa``; the least augmented present mode is the top one
    (``e_rel = 1``), so ``kappa = lam_min (1 + eps)``; mode ``m`` survives iff
    ``lam_m max(eps, floor) < kappa`` (at ``s_m = 0`` its rate has the sign of
    ``1 - lam_m p_m / kappa``), and then ``e_rel = (kappa/lam_m - eps)^(1/alpha)``. ``present``:
    mask of the modes with ``s(0) > 0`` (default all); absent modes stay at 0."""
    lam = 1.0 + check_nonnegative("sigma2", sigma2)
    lam = np.atleast_1d(lam)
    present = np.ones(lam.shape, bool) if present is None else np.asarray(present, bool)
    if not present.any():
        raise ValueError("present: at least one mode must be present")
    lam_min = float(lam[present].min())
    kappa = lam_min * (1.0 + cfg.eps)
    p_low = max(cfg.eps, cfg.floor)
    survives = present & (lam * p_low < kappa)
    target = np.where(survives, kappa / lam - cfg.eps, 0.0)
    e_rel = np.where(survives, np.clip(target, 0.0, None) ** (1.0 / cfg.alpha), 0.0)
    s_rel = np.where(survives, e_rel * lam_min / lam, 0.0)
    p = np.where(survives, kappa / lam, p_low)
    return CosineFixedPoint(survives, e_rel, s_rel, p, kappa)


def l2_directset_rate(*, sigma2: float, eps: float, eta: float = 0.0, tau: float = 1.0,
                      symmetric: bool = False) -> float:
    """Late-time rate of ``log s`` of every mode under the L2 loss with a max-normalised set
    predictor (isotropic augmentation; the shape is then isotropic, ``p = 1 + eps``):
    ``g 2 (1+eps)(tau - (1+sigma2)(1+eps)) - 2 eta``. Negative (collapse) unless
    ``sigma2 = eps = eta = 0`` (then 0: marginal)."""
    g = _loss_factor(symmetric)
    top = 1.0 + eps
    return g * 2.0 * top * (tau - (1.0 + sigma2) * top) - 2.0 * eta


# ----------------------------------------------------------------------------- integration
@dataclass(frozen=True)
class DirectSetModeTrajectory:
    """Saved states of :func:`integrate_directset_modes`: ``t`` (n,), ``s`` (n, d) the
    eigenvalues of ``F = W X W^T`` per mode (not re-sorted), ``p`` (n, d) the predictor
    eigenvalues, ``e`` (n, d) ``= s (1 + sigma2)``."""

    t: np.ndarray
    s: np.ndarray
    p: np.ndarray
    e: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def integrate_directset_modes(s0, *, loss: str = "cosine", sigma2=0.0, eta: float = 0.0,
                              tau: float = 1.0, directpred: DirectPredConfig = DirectPredConfig(),
                              symmetric: bool = False, t_end: float, method: str = "rk4",
                              dt: float = 0.01, n_save: int = 201, x=1.0) -> DirectSetModeTrajectory:
    """Integrate the per-mode flow ``MODE_RHS[loss]`` with ``p = directset_p(s (1+sigma2))``
    from ``s(0) = s0`` (1-D, modes) with :func:`dynamics.integrate.integrate`; ``x`` the modes'
    clocks (input variance along each mode, 1 for ``X = I``)."""
    rhs_fn = _rhs_of(loss)
    s0 = check_nonnegative("s0", s0)
    if s0.ndim != 1 or s0.size < 1:
        raise ValueError(f"s0: expected a 1-D array of mode eigenvalues, got shape {s0.shape}")
    lam = _lam(s0, check_nonnegative("sigma2", sigma2))
    eta = float(check_nonnegative("eta", eta))
    tau = float(check_positive("tau", tau))
    clock = _clock(s0, x)

    def rhs(t: float, s: np.ndarray) -> np.ndarray:
        return rhs_fn(s, directset_p(s * lam, directpred), sigma2=lam - 1.0, eta=eta, tau=tau,
                      symmetric=symmetric, x=clock)

    with np.errstate(over="ignore", invalid="ignore"):
        t, S = integrate(rhs, s0, float(t_end), method=method, dt=dt, n_save=n_save,
                         names=lambda idx: f"s[{idx[0]}]" if idx else "s",
                         project=lambda y: np.clip(y, 0.0, None))
    E = S * lam
    params = {"loss": loss, "sigma2": np.asarray(lam - 1.0).tolist(), "eta": eta, "tau": tau,
              "symmetric": bool(symmetric), "directpred": asdict(directpred), "method": method,
              "dt": dt, "x": np.asarray(clock).tolist()}
    return DirectSetModeTrajectory(t, S, directset_p(E, directpred), E, params)


# ----------------------------------------------------------------------------- SGD on the network
def cosine_loss_and_gradient(W: np.ndarray, Wp: np.ndarray, x1: np.ndarray, x2: np.ndarray,
                             *, symmetric: bool = False) -> tuple[float, np.ndarray]:
    """Minibatch negative cosine ``L = -1/B sum_b cos(Wp W x1_b, stopgrad(W x2_b))`` (plus the
    swapped term when ``symmetric``) and ``dL/dW`` (``Wp`` constant). Per sample
    ``dL/dq = -(z_hat - c q_hat)/|q|`` and ``dL/dW = Wp^T dL/dq x1^T``. Rows are samples."""
    loss, grad = 0.0, np.zeros_like(W)
    pairs = ((x1, x2), (x2, x1)) if symmetric else ((x1, x2),)
    for xa, xb in pairs:
        q = xa @ (Wp @ W).T
        z = xb @ W.T
        nq = np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
        nz = np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-300)
        qh, zh = q / nq, z / nz
        c = np.sum(qh * zh, axis=1, keepdims=True)
        B = xa.shape[0]
        dq = -(zh - c * qh) / nq / B           # (B, n2): dL/dq per sample
        grad += (dq @ Wp).T @ xa               # sum_b Wp^T dq_b x_b^T
        loss += -float(np.mean(c))
    return loss, grad


def l2_loss_and_gradient(W: np.ndarray, Wp: np.ndarray, x1: np.ndarray, x2: np.ndarray, *,
                         symmetric: bool = False) -> tuple[float, np.ndarray]:
    """Minibatch L2 loss (Eqn 1) with the stop-gradient target ``W x2`` and its ``dL/dW``
    (:func:`dynamics.sgd.minibatch_gradients`), plus the swapped term when ``symmetric``."""
    loss, grad = 0.0, np.zeros_like(W)
    pairs = ((x1, x2), (x2, x1)) if symmetric else ((x1, x2),)
    for xa, xb in pairs:
        loss += minibatch_loss(W, Wp, W, xa, xb)
        grad += minibatch_gradients(W, Wp, W, xa, xb, stop_grad=True)[0]
    return loss, grad


#: ``f(W, Wp, x1, x2, *, symmetric) -> (loss, dL/dW)`` by loss name.
LOSS_GRADIENTS: dict[str, Callable[..., tuple[float, np.ndarray]]] = {
    "cosine": cosine_loss_and_gradient,
    "l2": l2_loss_and_gradient,
}

#: Where the simulated DirectPred reads the correlation it decomposes: the exact population
#: value ``W (X + X') W^T`` or DirectPred's running minibatch estimate (rho, first batch sets it).
F_SOURCES = ("population", "running")


@dataclass(frozen=True)
class DirectSetSGDTrajectory:
    """Saved states of :func:`simulate_directset_sgd` (time first): ``s`` eigenvalues of
    ``F = W X W^T`` (descending), ``e`` and ``p`` the projections ``u_j^T W (X+X') W^T u_j`` and
    ``u_j^T Wp u_j`` on its eigenvectors, ``norm2 = ||W||_F^2``, ``loss`` the mean minibatch loss
    since the previous save (NaN at t = 0), the final ``W`` and ``W`` at every save (``Ws``,
    ``(n, n2, n1)``)."""

    t: np.ndarray
    s: np.ndarray
    e: np.ndarray
    p: np.ndarray
    norm2: np.ndarray
    loss: np.ndarray
    W: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    Ws: np.ndarray | None = None


def simulate_directset_sgd(W0, *, X, Xp, loss: str = "cosine", lr: float, batch: int,
                           t_end: float, eta: float = 0.0,
                           directpred: DirectPredConfig = DirectPredConfig(),
                           F_source: str = "population", symmetric: bool = False, seed: int = 0,
                           n_save: int = 101) -> DirectSetSGDTrajectory:
    """Minibatch SGD of the linear network with a set predictor (module docstring):
    per step, ``Wp = directpred_wp(F_hat)`` (every ``freq`` steps; held fixed in between),
    ``W <- W - lr (dL/dW + eta W)`` on ``batch`` fresh pairs (:func:`dynamics.sgd.sample_views`),
    ``t = step * lr``. ``F_hat`` is ``W (X + X') W^T`` (``"population"``) or the running estimate
    ``rho F_hat + (1 - rho) mean(f f^T)`` over the online outputs of both views (``"running"``)."""
    grad_fn = LOSS_GRADIENTS.get(loss)
    if grad_fn is None:
        raise ValueError(f"loss: must be one of {sorted(LOSS_GRADIENTS)}, got {loss!r}")
    if F_source not in F_SOURCES:
        raise ValueError(f"F_source: must be one of {F_SOURCES}, got {F_source!r}")
    W = check_finite("W0", W0).copy()
    if W.ndim != 2:
        raise ValueError(f"W0: must be an (n2, n1) matrix, got shape {W.shape}")
    X = check_finite("X", X)
    Xp = check_finite("Xp", Xp)
    if X.shape != (W.shape[1],) * 2 or Xp.shape != X.shape:
        raise ValueError(f"X, Xp: must be ({W.shape[1]}, {W.shape[1]}) to match W0, got "
                         f"{X.shape}, {Xp.shape}")
    lr = float(check_positive("lr", lr))
    eta = float(check_nonnegative("eta", eta))
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch: must be an integer >= 1, got {batch!r}")
    n_steps, save_at = save_grid(float(check_positive("t_end", t_end)), lr, n_save)
    rng = np.random.default_rng(seed)
    X_half, Xp_half = psd_sqrt(X), psd_sqrt(Xp)
    XXp = X + Xp
    T = len(save_at)
    out = {k: np.empty((T, W.shape[0])) for k in ("s", "e", "p")}
    norm2, losses = np.empty(T), np.full(T, np.nan)
    Ws = np.empty((T,) + W.shape)
    F_hat: np.ndarray | None = None
    Wp = directpred_wp(W @ XXp @ W.T, directpred)

    def record(k: int) -> None:
        s, U = eigh_desc(W @ X @ W.T)
        out["s"][k] = s
        out["e"][k] = np.einsum("ij,ik,kj->j", U, W @ XXp @ W.T, U)
        out["p"][k] = np.einsum("ij,ik,kj->j", U, Wp, U)
        norm2[k] = float(np.sum(W * W))
        Ws[k] = W

    record(0)
    k_save, loss_acc, n_acc = 1, 0.0, 0
    for step in range(1, n_steps + 1):
        x1, x2 = sample_views(rng, X_half, Xp_half, batch)
        if F_source == "running":
            F_hat = running_correlation(F_hat, np.concatenate([x1, x2]) @ W.T, directpred.rho)
        if (step - 1) % directpred.freq == 0:
            Wp = directpred_wp(W @ XXp @ W.T if F_source == "population" else F_hat, directpred)
        value, gW = grad_fn(W, Wp, x1, x2, symmetric=symmetric)
        W = W - lr * (gW + eta * W)
        loss_acc += value
        n_acc += 1
        if not np.isfinite(W).all():
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(W))[0])
            raise NonFiniteStateError(step * lr, step, f"W[{idx[0]},{idx[1]}]", idx)
        if k_save < T and step == save_at[k_save]:
            record(k_save)
            losses[k_save] = loss_acc / n_acc
            loss_acc, n_acc = 0.0, 0
            k_save += 1
    params = {"loss": loss, "lr": lr, "batch": int(batch), "eta": eta, "seed": seed,
              "F_source": F_source, "symmetric": bool(symmetric),
              "directpred": asdict(directpred)}
    return DirectSetSGDTrajectory(save_at * lr, out["s"], out["e"], out["p"], norm2, losses, W,
                                  params, Ws)
