"""The command line of ``python -m dynamics``: every subcommand's arguments and runner, kept apart
from the mathematics (the modules it calls take plain arrays and numbers).

Subcommands: ``modes`` and ``scalar`` (per-mode dynamics, Eqns 11-13, and scalar BYOL), ``matrix``
(Eqns 2-4), ``reduced`` (Eqns 7 / 62), ``sgd`` (minibatch SGD of the linear network); ``demo``
registers itself from :mod:`dynamics.demo`. Every command shows a progress bar unless ``--quiet``,
which also keeps the JSON summary off stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import check_fits_in_memory
from .integrate import FIXED_STEP_METHODS
from .matrix import SOLVERS, initial_weights, integrate_matrix, isotropic_data
from .modes import SCIPY_METHODS, MAX_PREDICTED_SETS, integrate_modes, integrate_scalar_byol
from .reduced import integrate_reduced
from .sgd import DirectPredConfig, simulate_sgd

__all__ = ["parse_values", "grid", "REGISTRARS"]


# ----------------------------------------------------------------------------- modes, scalar
def parse_values(text: str, name: str) -> np.ndarray:
    """``"0.1,0.5,1"`` (a list) or ``"lo:hi:n"`` (``n`` evenly spaced values) -> 1-D array; an
    ``n`` whose axis could not fit in memory is refused before anything is allocated."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            lo_f, hi_f, n_i = float(lo), float(hi), int(n)
            if n_i < 1:
                raise ValueError
        else:
            return np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ValueError(f"{name}: expected 'v1,v2,...' or 'lo:hi:n', got {text!r}") from None
    check_fits_in_memory(f"{name}={text!r}", 8.0 * n_i * 8)  # the axis and its grids
    return np.linspace(lo_f, hi_f, n_i)


def grid(axes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outer product of named 1-D axes: each array gets its own axis, in the given order."""
    k = len(axes)
    return {name: v.reshape((1,) * i + (-1,) + (1,) * (k - i - 1)) for i, (name, v) in enumerate(axes.items())}


def _check_grid(axes: dict[str, np.ndarray], n_save: int, n_vars: int) -> None:
    """Refuse a grid whose trajectories (``n_save`` saved times of ``n_vars`` variables, float64)
    and the integrator's working copies (about 12 states) exceed the memory available."""
    n = int(np.prod([v.size for v in axes.values()], dtype=np.float64))
    check_fits_in_memory(f"a grid of {n:,} trajectories", 8.0 * n * n_vars * (n_save + 12))


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
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary on stdout")
    p.add_argument("--plot", action="store_true", help="also draw what was computed: OUT/plot.png")


def _cmd_modes(args: argparse.Namespace) -> dict:
    from .exact import classify_basin

    axes = {"p0": parse_values(args.p0, "--p0"), "s0": parse_values(args.s0, "--s0"),
            "alpha_p": parse_values(args.alpha_p, "--alpha-p"), "eta": parse_values(args.eta, "--eta"),
            "sigma2": parse_values(args.sigma2, "--sigma2"), "tau": parse_values(args.tau, "--tau")}
    _check_grid(axes, args.n_save, 3)
    g = grid(axes)
    if args.beta is None:
        beta = None
    else:
        try:
            beta = float(args.beta)
        except ValueError:
            raise ValueError(f"--beta={args.beta!r} is invalid: allowed one number > 0") from None
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
    if args.plot:
        from .cliplot import plot_modes

        flat = lambda x: x.reshape(len(traj.t), -1)  # noqa: E731
        _said(plot_modes(traj.t, flat(traj.p), flat(traj.s), args.s_floor, args.out))
    return summary


def _cmd_scalar(args: argparse.Namespace) -> dict:
    axes = {"w_p0": parse_values(args.w_p0, "--w-p0"), "w0": parse_values(args.w0, "--w0"),
            "w_a0": parse_values(args.w_a0, "--w-a0"), "alpha_p": parse_values(args.alpha_p, "--alpha-p"),
            "eta": parse_values(args.eta, "--eta"), "sigma2": parse_values(args.sigma2, "--sigma2"),
            "beta": parse_values(args.beta, "--beta")}
    _check_grid(axes, args.n_save, 3)
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
    if args.plot:
        from .cliplot import plot_scalar

        _said(plot_scalar(traj.t, {"w_p": traj.w_p, "w": traj.w, "w_a": traj.w_a}, args.out))
    return summary


def register_modes(subparsers) -> None:
    """Add the ``modes`` and ``scalar`` subcommands to a ``python -m dynamics`` parser."""
    p = subparsers.add_parser("modes", help="integrate a grid of per-mode dynamics (Eqns 11-13)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                              description="Integrate scalar BYOL on the outer product of the given "
                              "values; write summary.json and trajectories.npz to --out.")
    q.add_argument("--w-p0", default="0.1,0.5")
    q.add_argument("--w0", default="0.5,1.0")
    q.add_argument("--w-a0", default="0.0")
    q.add_argument("--beta", default="0.4", help="EMA rate > 0 (list or lo:hi:n)")
    q.add_argument("--out", default="runs/scalar")
    _add_common(q, t_end=100.0)
    q.set_defaults(func=_cmd_scalar)


# ----------------------------------------------------------------------------- matrix, reduced, sgd
def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Sizes, hyperparameters, initialisation scale, seed and output folder."""
    p.add_argument("--n1", type=int, default=8, help="input dimension (default 8)")
    p.add_argument("--n2", type=int, default=8, help="output dimension (default 8)")
    p.add_argument("--alpha-p", "--alpha_p", dest="alpha_p", type=float, default=1.0,
                   help="predictor learning rate relative to the online one (default 1)")
    p.add_argument("--eta", type=float, default=0.0, help="weight decay (default 0)")
    p.add_argument("--sigma2", type=float, default=0.1,
                   help="augmentation variance: X = I, X' = sigma2 I (default 0.1)")
    p.add_argument("--t-end", "--t_end", dest="t_end", type=float, default=10.0,
                   help="integration time (default 10)")
    p.add_argument("--n-save", "--n_save", dest="n_save", type=int, default=201,
                   help="number of saved points (default 201)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation (default 0)")
    p.add_argument("--w-std", "--w_std", dest="w_std", type=float, default=None,
                   help="std of the entries of W0 (default 1/sqrt(n1))")
    p.add_argument("--wp-std", "--wp_std", dest="wp_std", type=float, default=None,
                   help="std of the entries of Wp0 (default 1/sqrt(n2))")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary on stdout")
    p.add_argument("--plot", action="store_true", help="also draw what was computed: OUT/plot.png")


def add_solver_arguments(p: argparse.ArgumentParser) -> None:
    """The integrator and its fixed step (``matrix``, ``reduced``)."""
    p.add_argument("--solver", default="rk4", choices=SOLVERS, help="integrator (default rk4)")
    p.add_argument("--dt", type=float, default=0.01, help="fixed step (default 0.01)")


def add_network_options(p: argparse.ArgumentParser) -> None:
    """EMA and the variants of the matrix dynamics (module docstring)."""
    p.add_argument("--beta", type=float, default=None,
                   help="EMA rate (BYOL); omit for SimSiam (Wa = W)")
    p.add_argument("--wa0", choices=("copy", "zeros"), default="copy",
                   help="initial target with --beta: a copy of W0 (BYOL) or zeros (paper Fig. 7)")
    p.add_argument("--no-stop-grad", dest="stop_grad", action="store_false",
                   help="gradient through the target branch too (Theorem 2; SimSiam only)")
    p.add_argument("--no-predictor", dest="predictor", action="store_false",
                   help="fix Wp to the identity")
    p.add_argument("--symmetric-wp", dest="symmetric_wp", action="store_true",
                   help="symmetrise the predictor flow (A3)")


def _initial(args: argparse.Namespace, **over) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`dynamics.matrix.initial_weights` from the shared arguments."""
    kw = dict(seed=args.seed, w_std=args.w_std, wp_std=args.wp_std,
              symmetric_wp=getattr(args, "symmetric_wp", False),
              predictor=getattr(args, "predictor", True),
              wa0_zeros=getattr(args, "beta", None) is not None and getattr(args, "wa0", "copy") == "zeros")
    kw.update(over)
    return initial_weights(args.n1, args.n2, **kw)


def _said(path: Path) -> None:
    print(f"wrote {path}", file=sys.stderr)


def write_outputs(traj, out: str | Path, plot: str | None = None) -> dict[str, Any]:
    """Save ``summary.json`` and ``trajectory.npz`` under ``out`` (and, with ``plot`` naming the
    dynamics, ``plot.png``: :func:`dynamics.cliplot.plot_matrix`), say where on stderr (stdout
    stays free for the summary), and return the summary."""
    js, npz = traj.save(out)
    print(f"wrote {js} and {npz}", file=sys.stderr)
    if plot is not None:
        from .cliplot import plot_matrix

        _said(plot_matrix(traj.t, traj.states(), out, plot))
    return traj.to_dict()


def _run_matrix(args: argparse.Namespace) -> dict[str, Any]:
    W0, Wp0, Wa0 = _initial(args)
    X, Xp = isotropic_data(args.n1, args.sigma2)
    traj = integrate_matrix(W0, Wp0, X=X, Xp=Xp, alpha_p=args.alpha_p, eta=args.eta,
                            beta=args.beta, Wa0=Wa0, stop_grad=args.stop_grad,
                            predictor=args.predictor, symmetric_wp=args.symmetric_wp,
                            t_end=args.t_end, solver=args.solver, dt=args.dt,
                            n_save=args.n_save, sigma2=args.sigma2, progress=not args.quiet)
    traj.params["seed"] = args.seed
    return write_outputs(traj, args.out, "matrix gradient flow (Eqns 2-4)" if args.plot else None)


def register_matrix(subparsers) -> argparse.ArgumentParser:
    """Add the ``matrix`` subcommand (sets ``func`` to the runner, which takes the parsed
    arguments and returns the JSON summary)."""
    p = subparsers.add_parser(
        "matrix", help="integrate the matrix gradient flow (Lemma 1, Eqns 2-4)",
        description="Integrate the matrix dynamics of the linear two-layer model on isotropic "
                    "data (X = I, X' = sigma2 I) from a seeded random initialisation; write "
                    "summary.json (final observables) and trajectory.npz to --out.")
    add_model_arguments(p)
    add_network_options(p)
    add_solver_arguments(p)
    p.add_argument("--out", default="runs/dynamics-matrix", help="output folder")
    p.set_defaults(func=_run_matrix)
    return p


def _run_reduced(args: argparse.Namespace) -> dict[str, Any]:
    W0, Wp0, _ = _initial(args, symmetric_wp=not args.unsymmetrised)  # symmetric Wp0 for Eqn 7
    traj = integrate_reduced(W0 @ W0.T, Wp0, alpha_p=args.alpha_p, eta=args.eta,
                             sigma2=args.sigma2, tau=args.tau, symmetric=not args.unsymmetrised,
                             t_end=args.t_end, solver=args.solver, dt=args.dt,
                             n_save=args.n_save, progress=not args.quiet)
    traj.params["seed"] = args.seed
    return write_outputs(traj, args.out, "reduced dynamics (Eqns 7/62)" if args.plot else None)


def register_reduced(subparsers) -> argparse.ArgumentParser:
    """Add the ``reduced`` subcommand (``F0 = W0 W0^T`` from a seeded random ``W0``)."""
    p = subparsers.add_parser(
        "reduced", help="integrate the reduced (F, Wp) dynamics (Eqn 7, or Eqn 62)",
        description="Integrate the reduced dynamics with fixed tau from F0 = W0 W0^T and a "
                    "random Wp0 (symmetrised for Eqn 7); write summary.json and trajectory.npz "
                    "to --out.")
    add_model_arguments(p)
    p.add_argument("--tau", type=float, default=1.0, help="fixed tau of A1 (default 1)")
    p.add_argument("--unsymmetrised", action="store_true",
                   help="Eqn 62 (general Wp) instead of Eqn 7")
    add_solver_arguments(p)
    p.add_argument("--out", default="runs/dynamics-reduced", help="output folder")
    p.set_defaults(func=_run_reduced)
    return p


def _run_sgd(args: argparse.Namespace) -> dict[str, Any]:
    W0, Wp0, Wa0 = _initial(args)
    X, Xp = isotropic_data(args.n1, args.sigma2)
    dp = None
    if args.directpred_freq < 0:
        raise ValueError(f"directpred_freq: must be >= 0 (0: off), got {args.directpred_freq}")
    if args.directpred_freq > 0:
        dp = DirectPredConfig(freq=args.directpred_freq, rho=args.rho, eps=args.dp_eps,
                              floor=args.floor, alpha=args.alpha, cj=args.cj)
    traj = simulate_sgd(W0, Wp0, X=X, Xp=Xp, lr=args.lr, batch=args.batch, t_end=args.t_end,
                        alpha_p=args.alpha_p, eta=args.eta, beta=args.beta, Wa0=Wa0,
                        stop_grad=args.stop_grad, predictor=args.predictor,
                        symmetric_wp=args.symmetric_wp, directpred=dp, n_save=args.n_save,
                        seed=args.seed, sigma2=args.sigma2, progress=not args.quiet)
    return write_outputs(traj, args.out, "minibatch SGD of the linear network" if args.plot else None)


def register_sgd(subparsers) -> argparse.ArgumentParser:
    """Add the ``sgd`` subcommand (minibatch SGD of the linear network on X = I,
    X' = sigma2 I)."""
    p = subparsers.add_parser(
        "sgd", help="train the linear two-layer network by minibatch SGD",
        description="Minibatch SGD of the linear network on Gaussian data with additive Gaussian "
                    "augmentation (X = I, X' = sigma2 I); time t = step * lr. Writes "
                    "summary.json and trajectory.npz to --out.")
    add_model_arguments(p)
    add_network_options(p)
    p.add_argument("--lr", "--dt", dest="lr", type=float, default=0.01,
                   help="online learning rate = ODE time step (default 0.01)")
    p.add_argument("--batch", type=int, default=128, help="minibatch size (default 128)")
    # DirectPred's knobs carry realnet's predictor.* names (--freq, --eps, --cj, --alpha, --floor,
    # --rho); the older spellings stay as aliases
    p.add_argument("--freq", "--directpred-freq", "--directpred_freq", dest="directpred_freq", metavar="K",
                   type=int, default=0,
                   help="set Wp by DirectPred every k steps (0: off, default); realnet's predictor.freq")
    p.add_argument("--rho", type=float, default=0.3,
                   help="DirectPred running-average momentum (default 0.3); predictor.rho")
    p.add_argument("--eps", "--dp-eps", "--dp_eps", dest="dp_eps", type=float, default=0.1, metavar="EPS",
                   help="DirectPred eps (default 0.1); predictor.eps")
    p.add_argument("--cj", type=float, default=0.0,
                   help="c_j ablation, p_j = max(s_j/s_max - c_j, floor)^alpha (default 0: off); predictor.cj")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="DirectSet exponent (default 0.5 = DirectPred); predictor.alpha")
    p.add_argument("--floor", type=float, default=1e-4,
                   help="lower bound of p_j (default 1e-4); predictor.floor")
    p.add_argument("--out", default="runs/dynamics-sgd", help="output folder")
    p.set_defaults(func=_run_sgd)
    return p


#: ``register(subparsers)`` of each subcommand group, in the order of ``--help``.
REGISTRARS = (register_modes, register_matrix, register_reduced, register_sgd)
