"""``python -m dynamics.bench``: throughput of the theory integrators.

Rows (all float64, fixed step ``dt`` unless noted):

- per-mode Eqns 11-12, compiled kernel (numba), Euler and RK4: ``--n-traj`` independent
  trajectories (a grid over ``p0, s0, eta, alpha_p``) for ``--steps`` steps each;
- the numpy fallback on the same batch, timed for ``--numpy-steps`` steps and extrapolated
  linearly to ``--steps`` (its cost per step is constant), and its largest difference from the
  kernel after those steps;
- a per-trajectory :func:`scipy.integrate.solve_ivp` loop (RK45, rtol 1e-6, atol 1e-9, the same
  time span): ``--n-ivp`` trajectories timed, extrapolated per trajectory to ``--n-traj``;
- the matrix ODE (``dynamics.matrix.integrate_matrix``, Euler, ``n1 = n2 = 64``) in steps/s.

The machine load (1-minute load average) is printed: the timings are only comparable on an
otherwise idle machine.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

from .modes import _numba_kernels, integrate_modes
from .rhs import _mode_derivs

__all__ = ["benchmark_grid", "main"]

CHUNK_HINT = 256  # more trajectories than one kernel chunk: warms up the parallel kernel


def benchmark_grid(n_traj: int) -> dict[str, np.ndarray]:
    """``n_traj`` starts/hyperparameters: the first ``n_traj`` points of a ``k^4`` grid over
    ``p0, s0 in [0.05, 1.5]``, ``eta in [0, 0.2]``, ``alpha_p in [0.5, 2]`` (``k^4 >= n_traj``)."""
    k = max(1, math.ceil(n_traj ** 0.25 - 1e-9))
    axes = np.meshgrid(np.linspace(0.05, 1.5, k), np.linspace(0.05, 1.5, k), np.linspace(0.0, 0.2, k),
                       np.linspace(0.5, 2.0, k), indexing="ij")
    return {name: a.ravel()[:n_traj].copy() for name, a in zip(("p0", "s0", "eta", "alpha_p"), axes)}


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _run_modes(g, steps, dt, solver, backend):
    return integrate_modes(g["p0"], g["s0"], alpha_p=g["alpha_p"], eta=g["eta"], sigma2=0.0,
                           t_end=steps * dt, dt=dt, solver=solver, n_save=2, backend=backend)


def _solve_ivp_loop(g, n_ivp: int, t_end: float) -> float:
    """Seconds for ``n_ivp`` single-trajectory solve_ivp calls (evenly picked from the grid)."""
    idx = np.linspace(0, len(g["p0"]) - 1, n_ivp).round().astype(int)

    def run():
        for i in idx:
            a, e = g["alpha_p"][i], g["eta"][i]

            def rhs(t, y):
                dp, ds, _ = _mode_derivs(y[0], y[1], 1.0, a, e, 1.0)
                return [dp, ds]

            solve_ivp(rhs, (0.0, t_end), [g["p0"][i], g["s0"][i]], method="RK45", rtol=1e-6, atol=1e-9)

    return _timed(run)[0]


def _matrix_row(steps: int, dt: float) -> str:
    try:
        from .matrix import integrate_matrix
    except ImportError:
        return "n/a (dynamics.matrix missing)"
    n = 64
    rng = np.random.default_rng(0)
    W0 = rng.normal(size=(n, n)) / np.sqrt(n)
    Wp0 = rng.normal(size=(n, n)) / np.sqrt(n)
    run = lambda: integrate_matrix(W0, Wp0, X=np.eye(n), Xp=0.1 * np.eye(n), alpha_p=1.0, eta=0.01,
                                   t_end=steps * dt, solver="euler", dt=dt, n_save=2)
    run_small = lambda: integrate_matrix(W0, Wp0, X=np.eye(n), Xp=0.1 * np.eye(n), alpha_p=1.0, eta=0.01,
                                         t_end=dt, solver="euler", dt=dt, n_save=2)
    run_small()  # warm-up
    sec, _ = _timed(run)
    return f"{steps / sec:,.0f} steps/s ({steps} Euler steps in {sec:.2f} s)"


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(prog="python -m dynamics.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-traj", type=int, default=1_000_000, help="trajectories (default 1e6)")
    ap.add_argument("--steps", type=int, default=10_000, help="fixed steps each (default 1e4)")
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--numpy-steps", type=int, default=20, help="steps timed for the numpy fallback")
    ap.add_argument("--n-ivp", type=int, default=200, help="trajectories timed with solve_ivp")
    ap.add_argument("--matrix-steps", type=int, default=500, help="Euler steps of the 64x64 matrix ODE")
    args = ap.parse_args(argv)
    for name in ("n_traj", "steps", "numpy_steps", "n_ivp", "matrix_steps"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')}: must be >= 1")
    numpy_steps = min(args.numpy_steps, args.steps)

    g = benchmark_grid(args.n_traj)
    load0 = os.getloadavg()[0]
    work = args.n_traj * args.steps
    rows: list[tuple[str, str, str]] = []
    results: dict[str, object] = {"n_traj": args.n_traj, "steps": args.steps}
    has_numba = _numba_kernels() is not None
    if has_numba:
        _run_modes(benchmark_grid(2 * CHUNK_HINT), 2, args.dt, "euler", "numba")  # compile / load
    for solver in ("euler", "rk4"):
        if not has_numba:
            rows.append((f"modes {solver}, numba kernel", "n/a", "(numba missing)"))
            continue
        sec, _ = _timed(lambda: _run_modes(g, args.steps, args.dt, solver, "numba"))
        results[f"numba_{solver}_s"] = sec
        rows.append((f"modes {solver}, numba kernel", f"{sec:.3g}", f"{work / sec:.3g}"))
    for solver in ("euler", "rk4"):
        sec, ref = _timed(lambda: _run_modes(g, numpy_steps, args.dt, solver, "numpy"))
        full = sec * args.steps / numpy_steps
        results[f"numpy_{solver}_s"] = full
        rows.append((f"modes {solver}, numpy fallback (timed {numpy_steps} steps, extrapolated)",
                     f"{full:.3g}", f"{work / full:.3g}"))
        if has_numba:
            fast = _run_modes(g, numpy_steps, args.dt, solver, "numba")
            diff = max(float(np.max(np.abs(getattr(ref, v)[-1] - getattr(fast, v)[-1]))) for v in ("p", "s"))
            results[f"numpy_{solver}_max_diff"] = diff
            rows.append((f"  |numpy - numba| after {numpy_steps} {solver} steps", f"{diff:.1e}", ""))
    n_ivp = min(args.n_ivp, args.n_traj)
    sec = _solve_ivp_loop(g, n_ivp, args.steps * args.dt)
    full = sec / n_ivp * args.n_traj
    results["solve_ivp_s"] = full
    rows.append((f"modes solve_ivp RK45 loop (timed {n_ivp} trajectories, extrapolated)",
                 f"{full:.3g}", f"{args.n_traj * args.steps / full:.3g} (step-equivalent)"))
    fastest = "numba_euler_s" if has_numba else "numpy_euler_s"
    ratio = full / results[fastest]
    results["solve_ivp_over_fastest_euler"] = ratio
    rows.append((f"  solve_ivp loop / {fastest[:-2].replace('_', ' ')}", f"{ratio:,.0f}x", ""))
    matrix = _matrix_row(args.matrix_steps, args.dt)
    results["matrix_64"] = matrix
    load1 = os.getloadavg()[0]

    print(f"per-mode dynamics: {args.n_traj:,} trajectories x {args.steps:,} steps (dt = {args.dt}), "
          f"float64, {os.cpu_count()} CPU cores; 1-min load average {load0:.2f} -> {load1:.2f}")
    width = max(len(r[0]) for r in rows)
    print(f"{'integrator':<{width}}  {'seconds':>9}  trajectory-steps/s")
    for name, sec, rate in rows:
        print(f"{name:<{width}}  {sec:>9}  {rate}")
    print(f"{'matrix ODE, n1 = n2 = 64, Euler':<{width}}  {matrix}")
    results["load_average"] = (load0, load1)
    return results


if __name__ == "__main__":
    main()
