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

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

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
    "register",
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


# ----------------------------------------------------------------------------- command line
def parse_values(text: str, name: str) -> np.ndarray:
    """``"0.1,0.5,1"`` (a list) or ``"lo:hi:n"`` (``n`` evenly spaced values) -> 1-D array."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            if int(n) < 1:
                raise ValueError
            return np.linspace(float(lo), float(hi), int(n))
        return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ValueError(f"{name}: expected 'v1,v2,...' or 'lo:hi:n', got {text!r}") from None


def grid(axes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outer product of named 1-D axes: each array gets its own axis, in the given order."""
    k = len(axes)
    return {name: v.reshape((1,) * i + (-1,) + (1,) * (k - i - 1)) for i, (name, v) in enumerate(axes.items())}


def _write(out: Path, summary: dict, arrays: dict[str, np.ndarray], stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"{stem}.npz", **arrays)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def _add_common(p: argparse.ArgumentParser, t_end: float) -> None:
    p.add_argument("--alpha-p", default="1.0", help="relative predictor lr (list or lo:hi:n)")
    p.add_argument("--eta", default="0.0", help="weight decay (list or lo:hi:n)")
    p.add_argument("--sigma2", default="0.0", help="augmentation variance (list or lo:hi:n)")
    p.add_argument("--t-end", type=float, default=t_end)
    p.add_argument("--dt", type=float, default=0.01)
    p.add_argument("--solver", default="rk4", help=f"one of {FIXED_STEP_METHODS + SCIPY_METHODS}")
    p.add_argument("--n-save", type=int, default=201)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_modes(args: argparse.Namespace) -> dict:
    from .exact import classify_basin

    axes = {"p0": parse_values(args.p0, "--p0"), "s0": parse_values(args.s0, "--s0"),
            "alpha_p": parse_values(args.alpha_p, "--alpha-p"), "eta": parse_values(args.eta, "--eta"),
            "sigma2": parse_values(args.sigma2, "--sigma2"), "tau": parse_values(args.tau, "--tau")}
    g = grid(axes)
    beta = None if args.beta is None else float(args.beta)
    t0 = time.perf_counter()
    traj = integrate_modes(g["p0"], g["s0"], alpha_p=g["alpha_p"], eta=g["eta"], sigma2=g["sigma2"],
                           tau=g["tau"], beta=beta, tau0=args.tau0, t_end=args.t_end, solver=args.solver,
                           dt=args.dt, n_save=args.n_save, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    survived = traj.s[-1] > args.s_floor
    summary = {
        "command": "modes", "axes": {k: v.tolist() for k, v in axes.items()},
        "beta": beta, "tau0": args.tau0 if beta is not None else None,
        "t_end": args.t_end, "dt": args.dt, "solver": args.solver,
        "n_trajectories": int(survived.size), "seconds": elapsed,
        "s_floor": args.s_floor, "n_survived": int(survived.sum()),
        "final": {v: {"min": float(np.min(x[-1])), "max": float(np.max(x[-1]))}
                  for v, x in (("p", traj.p), ("s", traj.s), ("tau", traj.tau))},
    }
    n_sets = int(np.prod([axes[k].size for k in ("alpha_p", "eta", "sigma2", "tau")]))
    if beta is not None:
        summary["fate_prediction"] = "not available: the exact basin rule is for fixed tau"
    elif np.any(axes["tau"] <= 0):
        summary["fate_prediction"] = "not available: the exact basin rule needs tau > 0"
    elif n_sets > MAX_PREDICTED_SETS:  # each set with 0 < eta <= eta_c computes a separatrix
        summary["fate_prediction"] = (f"skipped: {n_sets} hyperparameter sets > {MAX_PREDICTED_SETS}; "
                                      "use dynamics.exact.classify_basin")
    else:
        pred = classify_basin(g["p0"], g["s0"], alpha_p=g["alpha_p"], eta=g["eta"], sigma2=g["sigma2"],
                              tau=g["tau"])
        summary["fate_match_fraction"] = float(np.mean(pred.survives == survived))
    _write(Path(args.out), summary, {"t": traj.t, "p": traj.p, "s": traj.s, "tau": traj.tau,
                                     **{f"axis_{k}": v for k, v in axes.items()}}, "trajectories")
    return summary


def _cmd_scalar(args: argparse.Namespace) -> dict:
    axes = {"w_p0": parse_values(args.w_p0, "--w-p0"), "w0": parse_values(args.w0, "--w0"),
            "w_a0": parse_values(args.w_a0, "--w-a0"), "alpha_p": parse_values(args.alpha_p, "--alpha-p"),
            "eta": parse_values(args.eta, "--eta"), "sigma2": parse_values(args.sigma2, "--sigma2"),
            "beta": parse_values(args.beta, "--beta")}
    g = grid(axes)
    t0 = time.perf_counter()
    traj = integrate_scalar_byol(g["w_p0"], g["w0"], g["w_a0"], alpha_p=g["alpha_p"], eta=g["eta"],
                                 sigma2=g["sigma2"], beta=g["beta"], t_end=args.t_end, solver=args.solver,
                                 dt=args.dt, n_save=args.n_save, progress=not args.quiet)
    summary = {
        "command": "scalar", "axes": {k: v.tolist() for k, v in axes.items()}, "t_end": args.t_end,
        "dt": args.dt, "solver": args.solver, "n_trajectories": int(np.prod(traj.w.shape[1:])),
        "seconds": time.perf_counter() - t0,
        "final": {v: {"min": float(np.min(x[-1])), "max": float(np.max(x[-1]))}
                  for v, x in (("w_p", traj.w_p), ("w", traj.w), ("w_a", traj.w_a))},
    }
    _write(Path(args.out), summary, {"t": traj.t, "w_p": traj.w_p, "w": traj.w, "w_a": traj.w_a,
                                     **{f"axis_{k}": v for k, v in axes.items()}}, "trajectories")
    return summary


def register(subparsers) -> None:
    """Add the ``modes`` and ``scalar`` subcommands to a ``python -m dynamics`` parser."""
    p = subparsers.add_parser("modes", help="integrate a grid of per-mode dynamics (Eqns 11-13)",
                              description="Integrate Eqns 11-13 on the outer product of the given "
                              "values; write summary.json and trajectories.npz to --out.")
    p.add_argument("--p0", default="-0.5:1.5:9", help="initial p (list 'a,b,c' or 'lo:hi:n')")
    p.add_argument("--s0", default="0.1:1.5:8", help="initial s >= 0 (list or lo:hi:n)")
    p.add_argument("--tau", default="1.0", help="fixed tau (list or lo:hi:n); unused with --beta")
    p.add_argument("--beta", default=None, help="EMA rate; given: tau follows Eqn 13 from --tau0")
    p.add_argument("--tau0", type=float, default=0.0)
    p.add_argument("--s-floor", type=float, default=1e-6, help="final s above this counts as survived")
    p.add_argument("--out", default="runs/modes")
    _add_common(p, t_end=200.0)
    p.set_defaults(func=_cmd_modes)

    q = subparsers.add_parser("scalar", help="integrate the scalar BYOL system (w_p, w, w_a)",
                              description="Integrate scalar BYOL on the outer product of the given "
                              "values; write summary.json and trajectories.npz to --out.")
    q.add_argument("--w-p0", default="0.1,0.5")
    q.add_argument("--w0", default="0.5,1.0")
    q.add_argument("--w-a0", default="0.0")
    q.add_argument("--beta", default="0.4", help="EMA rate > 0 (list or lo:hi:n)")
    q.add_argument("--out", default="runs/scalar")
    _add_common(q, t_end=100.0)
    q.set_defaults(func=_cmd_scalar)
