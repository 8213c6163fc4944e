"""Integrators shared by every ODE of the package.

A right-hand side is a plain function ``rhs(t, y) -> dy/dt`` on a numpy array ``y`` of any shape.
:func:`integrate` runs it with

- ``"euler"``: fixed-step forward Euler. With ``dt`` equal to the learning rate this *is* the
  paper's discrete (full-batch) gradient descent, so it is the scheme to use when comparing with
  SGD at the same step size;
- ``"rk4"``: classical fixed-step Runge-Kutta 4;
- any method of :func:`scipy.integrate.solve_ivp` (``"RK45"``, ``"DOP853"``, ``"LSODA"``,
  ``"Radau"``, ...) for adaptive, accurate integration.

Non-finite states stop the integration with :class:`NonFiniteStateError`, which says when
(time and step) and in which variable it happened.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.integrate import solve_ivp

from ._validate import check_positive

__all__ = ["NonFiniteStateError", "integrate", "FIXED_STEP_METHODS", "save_grid"]

FIXED_STEP_METHODS = ("euler", "rk4")

Names = Sequence[str] | Callable[[tuple[int, ...]], str] | None


class NonFiniteStateError(FloatingPointError):
    """The state became NaN or inf. Attributes: ``t`` (time of the first non-finite state
    seen), ``step`` (fixed-step index, or None for adaptive methods), ``variable`` (its name),
    ``index`` (the index into the state array)."""

    def __init__(self, t: float, step: int | None, variable: str, index: tuple[int, ...]):
        self.t, self.step, self.variable, self.index = t, step, variable, index
        where = f"step {step}, " if step is not None else ""
        super().__init__(
            f"state became non-finite at t = {t:.6g} ({where}variable {variable!r}, index {index}); "
            "reduce dt / the learning rate, or check the hyperparameters (large alpha_p or "
            "initial values make the dynamics stiff)")


def _name_of(names: Names, index: tuple[int, ...]) -> str:
    if names is None:
        return "y"
    if callable(names):
        return names(index)
    return str(names[index[0]]) if index else str(names[0])


def _check(y: np.ndarray, t: float, step: int | None, names: Names) -> None:
    if not np.isfinite(y).all():
        bad = np.argwhere(~np.isfinite(y))[0]
        idx = tuple(int(i) for i in bad)
        raise NonFiniteStateError(t, step, _name_of(names, idx), idx)


#: Most fixed steps one integration may take (a runaway horizon is refused up front).
MAX_FIXED_STEPS = 1e9


def save_grid(t_end: float, dt: float, n_save: int) -> tuple[int, np.ndarray]:
    """Number of fixed steps and the step indices (including 0 and the last) at which the state
    is saved: ``n_save`` points as evenly spaced as the step grid allows."""
    if t_end / dt > MAX_FIXED_STEPS:
        raise ValueError(f"t_end: t_end / dt = {t_end / dt:.3g} steps is over the limit of "
                         f"{MAX_FIXED_STEPS:.0e}; shorten t_end, raise dt or use an adaptive solver")
    n_steps = int(round(t_end / dt))
    if n_steps < 1 or abs(n_steps * dt - t_end) > 1e-9 * max(1.0, t_end):
        raise ValueError(f"t_end: must be a positive multiple of dt (t_end={t_end}, dt={dt})")
    n_save = max(2, min(int(n_save), n_steps + 1))
    return n_steps, np.unique(np.round(np.linspace(0, n_steps, n_save)).astype(np.int64))


@dataclass
class _Progress:
    enabled: bool
    total: int

    def __enter__(self):
        self.bar = None
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="step", mininterval=0.5)
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def integrate(
    rhs: Callable[[float, np.ndarray], np.ndarray],
    y0: np.ndarray,
    t_end: float,
    *,
    method: str = "rk4",
    dt: float = 0.01,
    n_save: int = 201,
    t_eval: np.ndarray | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    names: Names = None,
    project: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate ``dy/dt = rhs(t, y)`` from ``y(0) = y0`` to ``t_end``.

    Returns ``(t, Y)`` with ``t`` of shape ``(n,)`` and ``Y`` of shape ``(n, *y0.shape)``.
    Fixed-step methods save ``n_save`` points on the step grid (always including 0 and
    ``t_end``); adaptive methods save at ``t_eval`` (default: ``n_save`` evenly spaced points).
    ``names`` labels the state for error messages: a sequence naming the entries along axis 0,
    or a function of the index tuple. ``project`` (fixed-step only) maps the state after each
    step, e.g. to re-symmetrise a matrix against round-off.
    """
    y = np.array(y0, dtype=np.float64)
    check_positive("t_end", t_end)
    _check(y, 0.0, 0, names)
    if method in FIXED_STEP_METHODS:
        check_positive("dt", dt)
        n_steps, save_at = save_grid(t_end, dt, n_save)
        ts = save_at * dt
        Y = np.empty((len(save_at),) + y.shape)
        Y[0] = y
        k_save = 1
        with _Progress(progress, n_steps) as bar:
            for step in range(1, n_steps + 1):
                t = (step - 1) * dt
                if method == "euler":
                    y = y + dt * rhs(t, y)
                else:
                    k1 = rhs(t, y)
                    k2 = rhs(t + dt / 2, y + (dt / 2) * k1)
                    k3 = rhs(t + dt / 2, y + (dt / 2) * k2)
                    k4 = rhs(t + dt, y + dt * k3)
                    y = y + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
                if project is not None:
                    y = project(y)
                _check(y, step * dt, step, names)
                if k_save < len(save_at) and step == save_at[k_save]:
                    Y[k_save] = y
                    k_save += 1
                if step % 1000 == 0:
                    bar.update(1000)
            bar.update(n_steps % 1000)
        return ts, Y

    if t_eval is None:
        t_eval = np.linspace(0.0, t_end, max(2, int(n_save)))
    shape = y.shape
    sol = solve_ivp(lambda t, v: np.ravel(rhs(t, v.reshape(shape))), (0.0, t_end), y.ravel(),
                    method=method, t_eval=t_eval, rtol=rtol, atol=atol)
    Y = sol.y.T.reshape((-1,) + shape)
    for k in range(Y.shape[0]):
        _check(Y[k], float(sol.t[k]), None, names)
    if sol.status != 0:
        last = sol.y[:, -1].reshape(shape) if sol.y.size else y
        _check(last, float(sol.t[-1]) if sol.t.size else 0.0, None, names)
        raise RuntimeError(f"solve_ivp ({method}) failed at t = {sol.t[-1] if sol.t.size else 0:.6g}: "
                           f"{sol.message}")
    return sol.t, Y
