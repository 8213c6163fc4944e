"""sympy derivations against the closed forms used numerically."""
import numpy as np
import pytest
import sympy as sp

from dynamics import symbolic as S
from dynamics.exact import collapse_threshold, fixed_point_branches, mode_jacobian, parabola_flow

p, s, tau, alpha_p, beta, eta, sigma2 = (S.SYMBOLS[k] for k in ("p", "s", "tau", "alpha_p", "beta", "eta", "sigma2"))


def _random_params(rng, n=10):
    for _ in range(n):
        t = rng.uniform(0.3, 1.5)
        sg = rng.uniform(0, 1)
        yield {tau: t, sigma2: sg, alpha_p: rng.uniform(0.3, 3), beta: rng.uniform(0.1, 1),
               eta: rng.uniform(0, 0.99) * t ** 2 / (4 * (1 + sg))}


def test_invariant_derivative_is_eqn14_exactly():
    # d/dt (s - p^2/alpha_p) along Eqns 11-12 simplifies to -2 eta (s - p^2/alpha_p): a symbolic
    # identity, so the residual must be exactly 0 (no tolerance).
    assert S.invariant_residual() == 0
    assert sp.simplify(S.invariant_derivative() - (-2 * eta * S.invariant())) == 0
    # ... and it does not depend on tau, so it holds for the EMA-driven tau of Eqn 13 as well.
    assert tau not in S.invariant_derivative().free_symbols


def test_parabola_flow_is_eqn16():
    expected = p ** 2 * (tau - (1 + sigma2) * p) - eta * p
    assert sp.expand(S.parabola_flow() - expected) == 0
    rng = np.random.default_rng(0)
    for sub in _random_params(rng, 3):
        x = rng.uniform(-1, 2)
        num = parabola_flow(x, tau=float(sub[tau]), eta=float(sub[eta]), sigma2=float(sub[sigma2]))
        assert float(S.parabola_flow().subs(sub).subs(p, x)) == pytest.approx(num, rel=1e-12, abs=1e-14)


def test_symbolic_fixed_points_equal_closed_forms():
    # Same numbers computed two ways in float64 (exact.py uses the cancellation-free form of
    # p*_-): agreement to a few ulp of O(1) values, rel 1e-12.
    roots = S.parabola_fixed_points()
    pts2d = S.fixed_points_2d()
    assert roots[0] == 0 and len(pts2d) == 2
    rng = np.random.default_rng(1)
    for sub in _random_params(rng):
        pm, pp = fixed_point_branches(float(sub[tau]), float(sub[eta]), float(sub[sigma2]))
        assert float(roots[1].subs(sub)) == pytest.approx(float(pm), rel=1e-12, abs=1e-15)
        assert float(roots[2].subs(sub)) == pytest.approx(float(pp), rel=1e-12)
        got = sorted((float(a.subs(sub)), float(b.subs(sub))) for a, b in pts2d)
        for (ps, ss), pn in zip(got, (float(pm), float(pp))):  # on the parabola s = p^2/alpha_p
            assert ps == pytest.approx(pn, rel=1e-12, abs=1e-15)
            assert ss == pytest.approx(pn ** 2 / float(sub[alpha_p]), rel=1e-11, abs=1e-15)


def test_symbolic_threshold():
    assert sp.simplify(S.collapse_threshold() - tau ** 2 / (4 * (1 + sigma2))) == 0
    assert float(S.collapse_threshold().subs({tau: 0.8, sigma2: 0.3})) == pytest.approx(
        float(collapse_threshold(0.8, 0.3)), rel=1e-15)


def test_symbolic_jacobian_equals_numeric():
    J = S.jacobian()
    rng = np.random.default_rng(2)
    for sub in _random_params(rng, 5):
        x, y = rng.uniform(-1, 2), rng.uniform(0, 2)
        num = mode_jacobian(x, y, alpha_p=float(sub[alpha_p]), eta=float(sub[eta]),
                            sigma2=float(sub[sigma2]), tau=float(sub[tau]))
        sym = np.array(J.subs(sub).subs({p: x, s: y}).evalf(), dtype=float)
        np.testing.assert_allclose(sym, num, rtol=1e-12, atol=1e-14)


def test_ema_jacobian_has_no_singularity_at_s0():
    # Eqn 13 divides by s, but (ds/dt)/(2s) = p (tau - lam p) - eta: after simplification the
    # 3x3 Jacobian must be polynomial (no s in a denominator).
    J = S.jacobian(ema=True)
    assert J.shape == (3, 3)
    for entry in J:
        assert s not in sp.denom(sp.together(entry)).free_symbols
