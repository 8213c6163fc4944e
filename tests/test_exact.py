"""Exact results (fixed points, threshold, invariant, basins, stability) against integration."""
import numpy as np
import pytest

from dynamics import classify_basin, collapse_threshold, fixed_points, integrate_modes, invariant_c
from dynamics.exact import (ema_tau_on_parabola, fixed_point_branches, fixed_point_stability,
                            mode_jacobian, parabola_flow, parabola_flow_slope, separatrix)
from dynamics.rhs import mode_rhs


def test_threshold_and_fixed_points_closed_forms():
    assert collapse_threshold(1.0, 0.0) == 0.25
    assert collapse_threshold(0.8, 0.6) == pytest.approx(0.64 / 6.4, rel=1e-15)
    # eta = 0: p*_- = 0 exactly (stable form 2 eta / (...)), p*_+ = tau / (1 + sigma2)
    assert fixed_points(0.9, 0.0, 0.5) == (0.0, pytest.approx(0.6, rel=1e-15))
    assert fixed_points(1.0, 0.2500001, 0.0) is None
    pm, pp = fixed_points(1.0, 0.25, 0.0)  # double root tau / (2 (1 + sigma2))
    assert pm == pytest.approx(0.5, rel=1e-15) and pp == pytest.approx(0.5, rel=1e-15)
    with pytest.raises(ValueError, match="eta"):
        fixed_points(1.0, np.array([0.1, 0.2]), 0.0)


def test_fixed_points_are_roots_of_eqn16_and_move_as_table4_says():
    tau = np.array([0.5, 0.8, 1.0])[:, None, None]
    eta = np.linspace(0, 0.3, 31)[None, :, None]
    sigma2 = np.array([0.0, 0.3])[None, None, :]
    pm, pp = fixed_point_branches(tau, eta, sigma2)
    exists = eta <= collapse_threshold(tau, sigma2)
    assert np.array_equal(np.isfinite(pp), np.broadcast_to(exists, pp.shape))
    # Roots of f(p) = p^2 (tau - lam p) - eta p: |f| is round-off, ~ eps * (terms of size <= 1).
    for root in (pm, pp):
        f = parabola_flow(root, tau=tau, eta=eta, sigma2=sigma2)
        assert np.nanmax(np.abs(f)) < 1e-15
    # Table 4: p*_- grows with eta (bigger collapse basin) and shrinks with tau (where defined).
    d_eta = np.diff(pm, axis=1)
    assert np.all(d_eta[np.isfinite(d_eta)] > 0)
    d_tau = np.diff(pm, axis=0)[:, 1:, :]  # eta > 0 only (at eta = 0, p*_- = 0 for every tau)
    assert np.all(d_tau[np.isfinite(d_tau)] < 0)


def test_invariant_sign_convention():
    # c > 0 above the parabola s = p^2 / alpha_p, c < 0 below, 0 on it.
    assert invariant_c(1.0, 2.0, 1.0) == 1.0 > 0
    assert invariant_c(1.0, 0.25, 2.0) == -0.25 < 0
    assert invariant_c(2.0, 2.0, 2.0) == 0.0


def test_jacobian_matches_finite_differences():
    # Central differences have error h^2/6 * |third derivative|; the field is cubic with O(1)
    # coefficients here, so with h = 1e-5 the error is ~1e-10, plus round-off eps/h ~ 1e-11.
    rng = np.random.default_rng(5)
    p, s = rng.uniform(-1, 2, 20), rng.uniform(0, 2, 20)
    kw = dict(alpha_p=rng.uniform(0.5, 2, 20), eta=rng.uniform(0, 0.3, 20), sigma2=rng.uniform(0, 1, 20),
              tau=rng.uniform(0.3, 1, 20))
    J = mode_jacobian(p, s, **kw)
    h = 1e-5
    f = lambda p_, s_: np.stack(mode_rhs(p_, s_, kw["tau"], alpha_p=kw["alpha_p"], eta=kw["eta"],
                                         sigma2=kw["sigma2"])[:2], axis=-1)
    np.testing.assert_allclose(J[..., 0], (f(p + h, s) - f(p - h, s)) / (2 * h), atol=1e-8)
    np.testing.assert_allclose(J[..., 1], (f(p, s + h) - f(p, s - h)) / (2 * h), atol=1e-8)


def test_stability_of_fixed_points():
    # On the parabola the 2-D eigenvalues are {f'(p*), -2 eta}: f' along the invariant parabola
    # (Eqn 16), -2 eta across it (Eqn 14). Checked to 1e-12 (eigvals of a 2x2 O(1) matrix).
    kw = dict(tau=1.0, eta=0.1, sigma2=0.2, alpha_p=1.5)
    pts = {f.name: f for f in fixed_point_stability(**kw)}
    assert set(pts) == {"origin", "p_minus", "p_plus"}
    assert (pts["origin"].kind, pts["p_minus"].kind, pts["p_plus"].kind) == ("stable", "saddle", "stable")
    assert (pts["p_minus"].kind_1d, pts["p_plus"].kind_1d) == ("unstable", "stable")
    for name in ("p_minus", "p_plus"):
        f = pts[name]
        expected = np.sort([f.slope_1d, -2 * kw["eta"]])
        np.testing.assert_allclose(np.sort(np.real(f.eigenvalues)), expected, atol=1e-12)
        assert f.slope_1d == pytest.approx(parabola_flow_slope(f.p, tau=1.0, eta=0.1, sigma2=0.2))
    # eta = 0: the origin is semi-stable on the parabola (f'(0) = 0, f''(0) = 2 tau > 0) and
    # fixed points form lines (a zero eigenvalue); eta > eta_c: only the stable origin remains.
    zero = {f.name: f for f in fixed_point_stability(tau=1.0, eta=0.0, sigma2=0.0, alpha_p=1.0)}
    assert zero["origin"].kind_1d == "semi-stable" and zero["p_plus"].kind == "non-hyperbolic"
    assert zero["p_plus"].kind_1d == "stable"
    big = fixed_point_stability(tau=1.0, eta=0.3, sigma2=0.0, alpha_p=1.0)
    assert [(f.name, f.kind) for f in big] == [("origin", "stable")]


def _simulated_survival(p0, s0, t_end, **kw):
    traj = integrate_modes(p0, s0, t_end=t_end, dt=0.01, n_save=2, **kw)
    return traj, traj.s[-1] > 1e-6


P_GRID = np.linspace(-1.0, 2.0, 31)[:, None]
S_GRID = np.concatenate([np.geomspace(1e-5, 1e-2, 7), np.linspace(0.05, 2.0, 14)])[None, :]


@pytest.mark.parametrize("alpha_p, eta, sigma2, tau", [
    (1.0, 0.0, 0.0, 1.0), (0.5, 0.0, 0.3, 0.8),          # c conserved
    (1.0, 0.05, 0.0, 1.0), (2.0, 0.1, 0.5, 1.0), (0.5, 0.15, 0.0, 1.0), (1.0, 0.05, 0.2, 0.7),  # bistable
    (1.0, 0.3, 0.0, 1.0),                                  # eta > eta_c
])
def test_basin_rule_against_long_integration_off_parabola(alpha_p, eta, sigma2, tau):
    """The basin rule of classify_basin on a 31 x 21 grid of starts (on, above and below the
    parabola) against RK4 integration to t_end = 1500.

    Simulated fate: survived iff s(t_end) > 1e-6. Collapse makes s ~ exp(-2 eta t) at least
    (rate 2 eta, = e^-150 at eta = 0.05) or, at eta = 0, s -> 0 at rate 2 p (lam p - tau) > 0;
    survivors keep s near p*_+^2 / alpha_p >= 0.1. The rule is exact, but a start within a
    relative distance |margin| of the boundary needs ~log(1/|margin|)/rate to be decided, and
    starts exactly on it (margin 0: e.g. s_inf = 0 at eta = 0) converge algebraically. So the
    comparison is strict for |margin| > 1e-2 (at most 10% of the grid may be that close; in
    practice only boundary points of the eta = 0 grid are).
    """
    kw = dict(alpha_p=alpha_p, eta=eta, sigma2=sigma2, tau=tau)
    pred = classify_basin(P_GRID, S_GRID, **kw)
    traj, survived = _simulated_survival(P_GRID, S_GRID, 1500.0, **kw)
    clear = np.abs(pred.margin) > 1e-2
    assert clear.mean() > 0.9
    assert np.array_equal(pred.survives[clear], survived[clear])
    ok = pred.survives & survived & clear
    # Predicted limits: eta = 0 survivors land on p = tau/lam with s_inf = s0 + (p*^2 - p0^2)/alpha_p
    # up to RK4's drift of c (~dt^4 per unit time: <= 1e-6 here); eta > 0 survivors land on
    # (p*_+, p*_+^2/alpha_p), collapses on the origin (eta > 0) to within e^-(rate t_end).
    np.testing.assert_allclose(traj.p[-1][ok], pred.p_inf[ok], atol=1e-6)
    np.testing.assert_allclose(traj.s[-1][ok], pred.s_inf[ok], atol=1e-6)
    if eta > 0:
        gone = ~pred.survives & clear
        assert np.all(np.abs(traj.p[-1][gone]) < 1e-6)


def test_basin_on_parabola_is_the_exact_eqn16_rule():
    # On the parabola c stays 0, so the fate is decided by p0 vs p*_- alone (Eqn 16).
    for eta in (0.02, 0.1, 0.2):
        pm, pp = fixed_points(1.0, eta, 0.0)
        p0 = np.linspace(-0.5, 1.5, 201)
        pred = classify_basin(p0, p0 ** 2, alpha_p=1.0, eta=eta, sigma2=0.0)
        assert np.array_equal(pred.survives, p0 > pm)


def test_naive_projection_rule_fails_off_parabola():
    # Why the separatrix is needed: just above the origin (p0 slightly below p*_-, s0 well above
    # the parabola) the mode survives although p0 < p*_-.
    eta = 0.1
    pm, _ = fixed_points(1.0, eta, 0.0)
    p0, s0 = 0.5 * pm, 0.5
    pred = classify_basin(p0, s0, alpha_p=1.0, eta=eta, sigma2=0.0)
    _, survived = _simulated_survival(np.array([p0]), np.array([s0]), 500.0, alpha_p=1.0, eta=eta, sigma2=0.0)
    assert bool(pred.survives) and bool(survived[0])


def test_separatrix_separates():
    # Starts 2% above / below the computed boundary go to opposite attractors. The boundary
    # is computed to ~1e-5 relative where S > 1e-3 (DOP853 at rtol 1e-11, interpolation
    # on 20000 points evenly spaced in arc length), far inside the 2% offset; the 2% offset
    # itself is resolved fast: leaving the saddle from a 2% offset at the escape rate
    # f'(p*_-) = 0.087 takes ~ln(50)/0.087 ~ 45 << t_end = 800.
    kw = dict(alpha_p=1.0, eta=0.1, sigma2=0.0, tau=1.0)
    P, S = separatrix(p_range=(-1.5, 2.5), s_max=4.0, **kw)
    assert np.all(np.diff(P) > 0)
    pick = np.linspace(0, len(P) - 1, 25).round().astype(int)
    pick = pick[(P[pick] > -1) & (P[pick] < 2) & (S[pick] < 2) & (S[pick] > 1e-3)]
    assert len(pick) >= 8
    _, up = _simulated_survival(P[pick], 1.02 * S[pick], 800.0, **kw)
    _, down = _simulated_survival(P[pick], 0.98 * S[pick], 800.0, **kw)
    assert up.all() and not down.any()


def test_ema_tau_on_parabola_eqn15():
    # On the parabola with tau(0) = 0, Eqn 15 is the exact solution of Eqn 13. Evaluating its
    # integral by the trapezoid rule on the saved grid has error O(h^2): halving h must divide
    # it by ~4 (accepted [3, 5]); the integration error (RK4, dt = 0.001) is ~1e-12, far below.
    p0 = np.array([0.3, 0.6, 1.2])
    kw = dict(alpha_p=1.0, eta=0.05, sigma2=0.1, beta=0.4, tau0=0.0, t_end=20.0, dt=0.001)
    errs = []
    for n_save in (401, 801):
        traj = integrate_modes(p0, p0 ** 2, n_save=n_save, **kw)
        pred = ema_tau_on_parabola(traj.t, traj.p, 0.4)
        errs.append(np.max(np.abs(pred[1:] - traj.tau[1:])))
    assert errs[1] < 1e-4
    assert 3 < errs[0] / errs[1] < 5, errs


@pytest.mark.parametrize("bad, name", [(dict(tau=0.0), "tau"), (dict(sigma2=-1.0), "sigma2"),
                                       (dict(eta=-0.1), "eta"), (dict(alpha_p=0.0), "alpha_p"),
                                       (dict(s0=-1.0), "s0"), (dict(p0=np.ones(2), s0=np.ones(3)), "broadcast")])
def test_classify_bad_input(bad, name):
    kw = dict(p0=0.5, s0=0.5, alpha_p=1.0, eta=0.05, sigma2=0.0, tau=1.0)
    kw.update(bad)
    with pytest.raises(ValueError, match=name):
        classify_basin(kw.pop("p0"), kw.pop("s0"), **kw)
