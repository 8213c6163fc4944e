"""Symbolic derivations (sympy) of the per-mode results of Section 3.

Each function returns sympy expressions built from the symbols of :data:`SYMBOLS`, so the
closed forms used numerically in :mod:`dynamics.exact` can be checked against a derivation:

- :func:`mode_equations`: Eqns 11-12 (and Eqn 13 for the EMA-driven ``tau``);
- :func:`parabola_flow`: Eqn 16, obtained by substituting ``s = p^2/alpha_p`` into Eqn 11;
- :func:`parabola_fixed_points`: its roots ``0, p*_-, p*_+``;
- :func:`fixed_points_2d`: the fixed points of the full ``(p, s)`` system with ``s != 0``;
- :func:`jacobian`: the Jacobian of Eqns 11-12 (or 11-13);
- :func:`invariant_derivative`: ``d/dt (s - p^2/alpha_p)`` along Eqns 11-12, which simplifies
  to ``-2 eta (s - p^2/alpha_p)`` (Eqn 14); :func:`invariant_residual` is the difference, 0.
"""
from __future__ import annotations

import sympy as sp

__all__ = [
    "SYMBOLS",
    "mode_equations",
    "parabola_flow",
    "parabola_fixed_points",
    "fixed_points_2d",
    "jacobian",
    "invariant",
    "invariant_derivative",
    "invariant_residual",
    "collapse_threshold",
]

p, s, tau = sp.symbols("p s tau", real=True)
alpha_p, beta = sp.symbols("alpha_p beta", positive=True)
eta, sigma2 = sp.symbols("eta sigma2", nonnegative=True)
SYMBOLS = {"p": p, "s": s, "tau": tau, "alpha_p": alpha_p, "beta": beta, "eta": eta, "sigma2": sigma2}


def mode_equations(ema: bool = False) -> tuple[sp.Expr, ...]:
    """``(dp/dt, ds/dt)`` of Eqns 11-12; with ``ema=True`` also ``dtau/dt`` of Eqn 13,
    ``beta (1 - tau) - tau (ds/dt)/(2 s)``."""
    dp = alpha_p * s * (tau - (1 + sigma2) * p) - eta * p
    ds = 2 * p * s * (tau - (1 + sigma2) * p) - 2 * eta * s
    if not ema:
        return dp, ds
    return dp, ds, beta * (1 - tau) - tau * ds / (2 * s)


def parabola_flow() -> sp.Expr:
    """Eqn 11 on the parabola ``s = p^2/alpha_p`` (Eqn 16), expanded."""
    return sp.expand(mode_equations()[0].subs(s, p ** 2 / alpha_p))


def parabola_fixed_points() -> list[sp.Expr]:
    """Roots in ``p`` of Eqn 16: ``[0, p*_-, p*_+]`` (``p*_-`` has the minus sign)."""
    roots = sp.solve(sp.Eq(parabola_flow(), 0), p)
    nonzero = [r for r in roots if r != 0]
    root = sp.sqrt(tau ** 2 - 4 * eta * (1 + sigma2))
    minus = [r for r in nonzero if sp.simplify(r - (tau - root) / (2 * (1 + sigma2))) == 0]
    plus = [r for r in nonzero if sp.simplify(r - (tau + root) / (2 * (1 + sigma2))) == 0]
    if len(roots) != 3 or len(minus) != 1 or len(plus) != 1:
        raise RuntimeError(f"unexpected roots of Eqn 16: {roots}")
    return [sp.Integer(0), minus[0], plus[0]]


def fixed_points_2d() -> list[tuple[sp.Expr, sp.Expr]]:
    """Solutions ``(p, s)`` of ``dp/dt = ds/dt = 0`` (Eqns 11-12) with ``s != 0``: they lie on
    the parabola, at ``p*_-`` and ``p*_+``."""
    dp, ds = mode_equations()
    sols = sp.solve([dp, sp.cancel(ds / s)], [p, s], dict=True)
    return [(sp.simplify(sol[p]), sp.simplify(sol[s])) for sol in sols]


def jacobian(ema: bool = False) -> sp.Matrix:
    """Jacobian of Eqns 11-12 in ``(p, s)``, or of Eqns 11-13 in ``(p, s, tau)``."""
    eqs = mode_equations(ema)
    return sp.simplify(sp.Matrix(eqs).jacobian([p, s, tau][: len(eqs)]))


def invariant() -> sp.Expr:
    """``c = s - p^2/alpha_p`` (Eqn 14; ``c > 0`` above the parabola)."""
    return s - p ** 2 / alpha_p


def invariant_derivative() -> sp.Expr:
    """``dc/dt = (dc/dp) dp/dt + (dc/ds) ds/dt`` along Eqns 11-12, simplified; equals
    ``-2 eta c`` for any ``tau`` (fixed or time-dependent), which is Eqn 14."""
    c = invariant()
    dp, ds = mode_equations()
    return sp.factor(sp.simplify(sp.diff(c, p) * dp + sp.diff(c, s) * ds))


def invariant_residual() -> sp.Expr:
    """``dc/dt + 2 eta c`` along Eqns 11-12, simplified: identically 0 (Eqn 14)."""
    return sp.simplify(invariant_derivative() + 2 * eta * invariant())


def collapse_threshold() -> sp.Expr:
    """The ``eta`` at which ``p*_-`` and ``p*_+`` merge (discriminant of Eqn 16 / p is zero):
    ``tau^2 / (4 (1 + sigma2))``."""
    quad = sp.expand(parabola_flow() / (-p))  # (1+sigma2) p^2 - tau p + eta
    disc = sp.discriminant(sp.Poly(quad, p))
    sol = sp.solve(sp.Eq(disc, 0), eta)
    if len(sol) != 1:
        raise RuntimeError(f"unexpected threshold solutions: {sol}")
    return sol[0]
