"""Decoupled per-mode dynamics (Eqns 11-13) and the scalar BYOL system.

Per eigenmode ``j`` of ``Wp = U diag(p_j) U^T`` and ``F = U diag(s_j) U^T`` (Section 3):

```
dp/dt   = alpha_p s [tau - (1+sigma2) p] - eta p            (Eqn 11)
ds/dt   = 2 p s [tau - (1+sigma2) p] - 2 eta s              (Eqn 12)
dtau/dt = beta (1 - tau) - tau (ds/dt) / (2 s)              (Eqn 13)
```

``tau`` is either fixed (``beta=None``; SimSiam is ``tau = 1``) or driven by the EMA (``beta``
given, ``tau(0) = tau0``). Since ``(ds/dt)/(2 s) = p [tau - (1+sigma2) p] - eta`` exactly, Eqn 13
is evaluated in that form, which stays finite at ``s = 0``.

Everything is vectorised: :func:`integrate_modes` broadcasts ``p0, s0, alpha_p, eta, sigma2,
tau, beta, tau0`` together and integrates the whole batch (modes x hyperparameters) in one call.
The fixed-step solvers (``"euler"``, ``"rk4"``) run a compiled kernel
(:mod:`dynamics._kernels`) when numba is available and fall back to
:func:`dynamics.integrate.integrate` otherwise; both execute the same floating-point operations
in the same order. Any :func:`scipy.integrate.solve_ivp` method name is accepted too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_finite, check_nonnegative, check_positive
from .integrate import FIXED_STEP_METHODS, integrate
from .rhs import MODE_VARIABLES, _ema_rate, _mode_derivs, scalar_byol_rhs

__all__ = [
    "ModeTrajectory",
    "ScalarByolTrajectory",
    "integrate_modes",
    "integrate_scalar_byol",
    "SCIPY_METHODS",
]

SCIPY_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
SCALAR_VARIABLES = ("w_p", "w", "w_a")
#: The ``modes`` command predicts fates (one separatrix per set) for at most this many sets.
MAX_PREDICTED_SETS = 50


# ----------------------------------------------------------------------------- containers
@dataclass(frozen=True)
class ModeTrajectory:
    """Saved states of :func:`integrate_modes`: ``t`` has shape ``(n,)``; ``p``, ``s`` and
    ``tau`` have shape ``(n, *batch_shape)`` (``tau`` is constant in time for fixed tau)."""

    t: np.ndarray
    p: np.ndarray
    s: np.ndarray
    tau: np.ndarray

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.p.shape[1:]


@dataclass(frozen=True)
class ScalarByolTrajectory:
    """Saved states of :func:`integrate_scalar_byol`, each ``(n, *batch_shape)``."""

    t: np.ndarray
    w_p: np.ndarray
    w: np.ndarray
    w_a: np.ndarray

    @property
    def s(self) -> np.ndarray:
        """``s = w^2`` (the single eigenvalue of ``F``)."""
        return self.w ** 2

    @property
    def tau(self) -> np.ndarray:
        """``tau = w_a / w`` (assumption A1); NaN where ``w = 0``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.w != 0, self.w_a / np.where(self.w != 0, self.w, 1.0), np.nan)


# ----------------------------------------------------------------------------- validation
def _broadcast(named: dict[str, np.ndarray]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*(a.shape for a in named.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in named.items())
        raise ValueError(f"{', '.join(named)}: shapes cannot be broadcast together ({shapes})") from None


def _check_solver(solver: str, dt: float, n_save: int) -> None:
    if solver not in FIXED_STEP_METHODS + SCIPY_METHODS:
        raise ValueError(f"solver: must be one of {FIXED_STEP_METHODS + SCIPY_METHODS}, got {solver!r}")
    check_positive("dt", dt)
    if int(n_save) != n_save or n_save < 2:
        raise ValueError(f"n_save: must be an integer >= 2, got {n_save!r}")


def _mode_inputs(p0, s0, alpha_p, eta, sigma2, tau, beta, tau0) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """Validate the arguments of :func:`integrate_modes`; return them broadcast to the batch
    shape (float64, contiguous) and that shape."""
    named = {
        "p0": check_finite("p0", p0),
        "s0": check_nonnegative("s0", s0),
        "alpha_p": check_positive("alpha_p", alpha_p),
        "eta": check_nonnegative("eta", eta),
        "sigma2": check_nonnegative("sigma2", sigma2),
        "tau": check_finite("tau", tau),
        "tau0": check_finite("tau0", tau0),
    }
    if beta is not None:
        named["beta"] = check_positive("beta", beta)
    shape = _broadcast(named)
    # np.array (not ascontiguousarray, which turns 0-d into shape (1,)) keeps scalar batches 0-d
    return {k: np.array(np.broadcast_to(v, shape), dtype=np.float64) for k, v in named.items()}, shape


# ----------------------------------------------------------------------------- integration
def _numba_kernels():
    """The compiled kernels, or None when numba cannot be imported."""
    try:
        from . import _kernels
    except ImportError:
        return None
    return _kernels


def integrate_modes(
    p0,
    s0,
    *,
    alpha_p,
    eta,
    sigma2,
    t_end: float,
    tau=1.0,
    beta=None,
    tau0=0.0,
    solver: str = "rk4",
    dt: float = 0.01,
    n_save: int = 201,
    progress: bool = False,
    backend: str = "auto",
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> ModeTrajectory:
    """Integrate Eqns 11-13 for a batch of modes x hyperparameters.

    ``p0, s0, alpha_p, eta, sigma2, tau, beta, tau0`` are broadcast together; the result has
    shape ``(n_save, *batch_shape)``. ``beta=None``: fixed ``tau`` (SimSiam: ``tau = 1``);
    ``beta > 0``: EMA-driven ``tau`` (Eqn 13) starting at ``tau0`` (``tau`` is then unused).

    ``solver``: ``"euler"`` (the paper's discrete gradient descent with step ``dt``), ``"rk4"``,
    or a :func:`scipy.integrate.solve_ivp` method (``rtol``/``atol`` apply). ``backend`` (fixed
    step only): ``"auto"`` (the compiled kernel when numba imports, else numpy), ``"numba"`` or
    ``"numpy"``.

    Raises ``ValueError`` naming the offending argument, and
    :class:`~dynamics.integrate.NonFiniteStateError` (naming ``p``, ``s`` or ``tau`` and the
    time) when the state overflows.
    """
    _check_solver(solver, dt, n_save)
    check_positive("t_end", t_end)
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend: must be 'auto', 'numba' or 'numpy', got {backend!r}")
    arr, shape = _mode_inputs(p0, s0, alpha_p, eta, sigma2, tau, beta, tau0)
    ema = beta is not None
    tau_init = arr["tau0"] if ema else arr["tau"]
    lam_s = 1.0 + arr["sigma2"]
    beta_arr = arr["beta"] if ema else np.zeros(shape)

    kernels = None
    if solver in FIXED_STEP_METHODS and backend != "numpy":
        kernels = _numba_kernels()
        if kernels is None and backend == "numba":
            raise ValueError("backend: 'numba' requested but numba cannot be imported")
    if kernels is not None:
        t, P, S, T = kernels.integrate_fixed_step(
            arr["p0"].ravel(), arr["s0"].ravel(), tau_init.ravel(), arr["alpha_p"].ravel(),
            arr["eta"].ravel(), lam_s.ravel(), beta_arr.ravel(), ema=ema, rk4=(solver == "rk4"),
            t_end=float(t_end), dt=float(dt), n_save=int(n_save), progress=progress, batch_shape=shape)
        return ModeTrajectory(t, P, S, T)

    def rhs(t, y):
        dp, ds, r = _mode_derivs(y[0], y[1], y[2], arr["alpha_p"], arr["eta"], lam_s)
        dtau = _ema_rate(y[2], r, beta_arr) if ema else np.zeros_like(dp)
        return np.stack([dp, ds, dtau])

    y0 = np.stack([arr["p0"], arr["s0"], tau_init])
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as NonFiniteStateError
        t, Y = integrate(rhs, y0, float(t_end), method=solver, dt=float(dt), n_save=int(n_save),
                         rtol=rtol, atol=atol, names=MODE_VARIABLES, progress=progress)
    return ModeTrajectory(t, Y[:, 0], Y[:, 1], Y[:, 2])


def integrate_scalar_byol(
    w_p0,
    w0,
    w_a0,
    *,
    alpha_p,
    eta,
    sigma2,
    beta,
    t_end: float,
    solver: str = "rk4",
    dt: float = 0.01,
    n_save: int = 201,
    progress: bool = False,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> ScalarByolTrajectory:
    """Integrate the scalar BYOL system (see :func:`scalar_byol_rhs`) for any broadcastable
    batch of initial values and hyperparameters. ``beta > 0`` is the EMA rate."""
    _check_solver(solver, dt, n_save)
    named = {
        "w_p0": check_finite("w_p0", w_p0),
        "w0": check_finite("w0", w0),
        "w_a0": check_finite("w_a0", w_a0),
        "alpha_p": check_positive("alpha_p", alpha_p),
        "eta": check_nonnegative("eta", eta),
        "sigma2": check_nonnegative("sigma2", sigma2),
        "beta": check_positive("beta", beta),
    }
    shape = _broadcast(named)
    a = {k: np.broadcast_to(v, shape) for k, v in named.items()}

    def rhs(t, y):
        return np.stack(scalar_byol_rhs(y[0], y[1], y[2], alpha_p=a["alpha_p"], eta=a["eta"],
                                        sigma2=a["sigma2"], beta=a["beta"]))

    y0 = np.stack([a["w_p0"], a["w0"], a["w_a0"]])
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as NonFiniteStateError
        t, Y = integrate(rhs, y0, float(t_end), method=solver, dt=float(dt), n_save=int(n_save),
                         rtol=rtol, atol=atol, names=SCALAR_VARIABLES, progress=progress)
    return ScalarByolTrajectory(t, Y[:, 0], Y[:, 1], Y[:, 2])
