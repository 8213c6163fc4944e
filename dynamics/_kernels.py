"""Compiled fixed-step kernels for the per-mode dynamics (Eqns 11-13).

Importing this module raises ``ImportError`` when numba is missing; :mod:`dynamics.modes` then
falls back to :func:`dynamics.integrate.integrate`. The kernels evaluate the very functions of
:mod:`dynamics.modes` (``_mode_derivs``, ``_ema_rate``) and perform the Euler / RK4 updates with
the same operations in the same order as :func:`dynamics.integrate.integrate`, in float64
without fast-math, so both paths give the same numbers.

Layout: trajectories are split into chunks of ``CHUNK``; ``prange`` runs over chunks; a chunk's
state and parameters are copied into a small local buffer that stays in L1 cache, and the time
loop runs over it with an inner loop over the chunk that the compiler vectorises (SIMD across
trajectories).

Non-finite states are detected at block ends (save points / progress ticks): a NaN or inf never
becomes finite again under ``x <- x + dt * (...)``, so a finite state at a block end means the
whole block was finite. A block that ends non-finite is replayed one step at a time on the
offending trajectories to report the exact first step, variable and index, as the numpy path does.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .integrate import NonFiniteStateError, _Progress, save_grid
from .rhs import MODE_VARIABLES, _ema_rate, _mode_derivs

__all__ = ["integrate_fixed_step", "advance", "CHUNK"]

CHUNK = 256
_derivs = numba.njit(cache=True)(_mode_derivs)
_rate = numba.njit(cache=True)(_ema_rate)


@numba.njit(cache=True)
def _euler_fixed(b, m, n_steps, dt):
    for _ in range(n_steps):
        for i in range(m):
            dp, ds, r = _derivs(b[0, i], b[1, i], b[2, i], b[3, i], b[4, i], b[5, i])
            b[0, i] = b[0, i] + dt * dp
            b[1, i] = b[1, i] + dt * ds


@numba.njit(cache=True)
def _euler_ema(b, m, n_steps, dt):
    for _ in range(n_steps):
        for i in range(m):
            p, s, tau = b[0, i], b[1, i], b[2, i]
            dp, ds, r = _derivs(p, s, tau, b[3, i], b[4, i], b[5, i])
            b[0, i] = p + dt * dp
            b[1, i] = s + dt * ds
            b[2, i] = tau + dt * _rate(tau, r, b[6, i])


@numba.njit(cache=True)
def _rk4_fixed(b, m, n_steps, dt):
    h2 = dt / 2
    h6 = dt / 6
    for _ in range(n_steps):
        for i in range(m):
            p, s, tau, a, eta, lam = b[0, i], b[1, i], b[2, i], b[3, i], b[4, i], b[5, i]
            p1, s1, r = _derivs(p, s, tau, a, eta, lam)
            p2, s2, r = _derivs(p + h2 * p1, s + h2 * s1, tau, a, eta, lam)
            p3, s3, r = _derivs(p + h2 * p2, s + h2 * s2, tau, a, eta, lam)
            p4, s4, r = _derivs(p + dt * p3, s + dt * s3, tau, a, eta, lam)
            b[0, i] = p + h6 * (p1 + 2.0 * p2 + 2.0 * p3 + p4)
            b[1, i] = s + h6 * (s1 + 2.0 * s2 + 2.0 * s3 + s4)


@numba.njit(cache=True)
def _rk4_ema(b, m, n_steps, dt):
    h2 = dt / 2
    h6 = dt / 6
    for _ in range(n_steps):
        for i in range(m):
            p, s, tau, a, eta, lam, beta = b[0, i], b[1, i], b[2, i], b[3, i], b[4, i], b[5, i], b[6, i]
            p1, s1, r = _derivs(p, s, tau, a, eta, lam)
            t1 = _rate(tau, r, beta)
            q, u, v = p + h2 * p1, s + h2 * s1, tau + h2 * t1
            p2, s2, r = _derivs(q, u, v, a, eta, lam)
            t2 = _rate(v, r, beta)
            q, u, v = p + h2 * p2, s + h2 * s2, tau + h2 * t2
            p3, s3, r = _derivs(q, u, v, a, eta, lam)
            t3 = _rate(v, r, beta)
            q, u, v = p + dt * p3, s + dt * s3, tau + dt * t3
            p4, s4, r = _derivs(q, u, v, a, eta, lam)
            t4 = _rate(v, r, beta)
            b[0, i] = p + h6 * (p1 + 2.0 * p2 + 2.0 * p3 + p4)
            b[1, i] = s + h6 * (s1 + 2.0 * s2 + 2.0 * s3 + s4)
            b[2, i] = tau + h6 * (t1 + 2.0 * t2 + 2.0 * t3 + t4)


@numba.njit(cache=True)
def _advance_chunk(state, params, c, n_steps, dt, rk4, ema):
    """Advance chunk ``c`` (trajectories ``c*CHUNK`` to ``(c+1)*CHUNK``) from a local buffer."""
    n = state.shape[1]
    i0 = c * CHUNK
    m = min(n, i0 + CHUNK) - i0
    b = np.empty((7, CHUNK))
    for i in range(m):
        for k in range(3):
            b[k, i] = state[k, i0 + i]
        for k in range(4):
            b[3 + k, i] = params[k, i0 + i]
    if rk4:
        if ema:
            _rk4_ema(b, m, n_steps, dt)
        else:
            _rk4_fixed(b, m, n_steps, dt)
    else:
        if ema:
            _euler_ema(b, m, n_steps, dt)
        else:
            _euler_fixed(b, m, n_steps, dt)
    for i in range(m):
        for k in range(3):
            state[k, i0 + i] = b[k, i]


@numba.njit(parallel=True, cache=True)
def advance_parallel(state, params, n_steps, dt, rk4, ema):
    """Advance ``state`` (3, N: p, s, tau) in place by ``n_steps`` fixed steps of size ``dt``;
    ``params`` is (4, N): alpha_p, eta, 1 + sigma2, beta (beta unused unless ``ema``)."""
    for c in prange((state.shape[1] + CHUNK - 1) // CHUNK):
        _advance_chunk(state, params, c, n_steps, dt, rk4, ema)


@numba.njit(cache=True)
def advance_serial(state, params, n_steps, dt, rk4, ema):
    """:func:`advance_parallel` on one thread (no thread launch per call)."""
    for c in range((state.shape[1] + CHUNK - 1) // CHUNK):
        _advance_chunk(state, params, c, n_steps, dt, rk4, ema)


def advance(state: np.ndarray, params: np.ndarray, n_steps: int, dt: float, rk4: bool, ema: bool) -> None:
    """:func:`advance_parallel` when there is more than one chunk of work, else serially
    (a parallel launch costs a thread wake-up per call, which dominates small batches)."""
    kernel = advance_parallel if state.shape[1] > CHUNK else advance_serial
    kernel(state, params, n_steps, dt, rk4, ema)


def _locate_non_finite(start: np.ndarray, end: np.ndarray, params: np.ndarray, first_step: int,
                       n_steps: int, dt: float, rk4: bool, ema: bool,
                       batch_shape: tuple[int, ...]) -> NonFiniteStateError:
    """Replay a block one step at a time from ``start`` (the finite state before step
    ``first_step``) on the trajectories that are non-finite in ``end``; return the error that
    the numpy path raises (first step; then lowest variable; then lowest flat index)."""
    bad = np.flatnonzero(~np.isfinite(end).all(axis=0))  # ascending flat indices
    sub, sub_params = np.ascontiguousarray(start[:, bad]), np.ascontiguousarray(params[:, bad])
    for k in range(n_steps):
        advance(sub, sub_params, 1, dt, rk4, ema)
        nf = ~np.isfinite(sub)
        if nf.any():
            var, j = np.argwhere(nf)[0]  # C order: lowest variable, then lowest index
            idx = (int(var),) + tuple(int(i) for i in np.unravel_index(bad[j], batch_shape))
            step = first_step + k
            return NonFiniteStateError(step * dt, step, MODE_VARIABLES[var], idx)
    raise AssertionError("non-finite state not reproduced on replay")  # pragma: no cover


def integrate_fixed_step(p0, s0, tau0, alpha_p, eta, lam_s, beta, *, ema: bool, rk4: bool,
                         t_end: float, dt: float, n_save: int, progress: bool,
                         batch_shape: tuple[int, ...]):
    """Integrate flat (N,) arrays; return ``(t, P, S, TAU)`` with states shaped
    ``(n_saved, *batch_shape)``. Same save grid as :func:`dynamics.integrate.integrate`."""
    n_steps, save_at = save_grid(t_end, dt, n_save)
    state = np.ascontiguousarray(np.stack([p0, s0, tau0]).astype(np.float64))
    params = np.ascontiguousarray(np.stack([alpha_p, eta, lam_s, beta]).astype(np.float64))
    ticks = save_at
    if progress:  # extra block ends so that the bar moves even with few save points
        ticks = np.union1d(save_at, np.linspace(0, n_steps, 101).round().astype(np.int64))
    out = np.empty((len(save_at), 3, state.shape[1]))
    out[0] = state
    k_save = 1
    with _Progress(progress, n_steps) as bar:
        for a, b in zip(ticks[:-1], ticks[1:]):
            start = state.copy()
            advance(state, params, int(b - a), dt, rk4, ema)
            if not np.isfinite(state).all():
                raise _locate_non_finite(start, state, params, int(a) + 1, int(b - a), dt, rk4, ema,
                                         batch_shape)
            if k_save < len(save_at) and b == save_at[k_save]:
                out[k_save] = state
                k_save += 1
            bar.update(int(b - a))
    t = save_at * dt
    shape = (len(save_at),) + tuple(batch_shape)
    return t, out[:, 0].reshape(shape), out[:, 1].reshape(shape), out[:, 2].reshape(shape)
