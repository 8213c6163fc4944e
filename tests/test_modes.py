"""Per-mode dynamics (Eqns 11-13) and scalar BYOL: integrators checked against exact results."""
import numpy as np
import pytest

from dynamics import NonFiniteStateError, integrate_modes, integrate_scalar_byol
from dynamics.exact import fixed_point_branches, invariant_c, invariant_c_at
from dynamics.rhs import mode_rhs, scalar_byol_rhs

EPS = np.finfo(float).eps

# A batch mixing every hyperparameter: 4 starts x 3 (alpha_p, eta, sigma2) sets.
P0 = np.array([-0.3, 0.2, 0.8, 1.3])[:, None]
S0 = np.array([0.5, 0.05, 1.0, 0.4])[:, None]
ALPHA = np.array([0.5, 1.0, 2.0])
ETA = np.array([0.0, 0.05, 0.1])
SIG2 = np.array([0.0, 0.2, 0.5])


def _invariant_error(traj, alpha_p, eta):
    """max_t |c(t) - c(0) exp(-2 eta t)| (Eqn 14)."""
    c = invariant_c(traj.p, traj.s, alpha_p)
    pred = invariant_c_at(c[0], eta, traj.t.reshape((-1,) + (1,) * (c.ndim - 1)))
    return float(np.max(np.abs(c - pred)))


@pytest.mark.parametrize("beta", [None, 0.4])
def test_invariant_eqn14_rk4_converges_at_fourth_order(beta):
    # Eqn 14 holds exactly for the ODE (fixed or EMA tau), so the only deviation is RK4's global
    # error, C dt^4 in the asymptotic regime: halving dt must divide it by 2^4 = 16. We accept
    # [11, 21] (pre-asymptotic terms of relative size O(dt) = a few % at these steps, plus
    # round-off at ~1e-14 which is far below the measured errors ~1e-9).
    kw = dict(alpha_p=ALPHA, eta=ETA, sigma2=SIG2, beta=beta, tau0=0.2, t_end=10.0, n_save=11)
    errs = [_invariant_error(integrate_modes(P0, S0, solver="rk4", dt=dt, **kw), ALPHA, ETA)
            for dt in (0.04, 0.02)]
    assert errs[1] > 100 * EPS  # a real, measurable discretisation error
    assert 11 < errs[0] / errs[1] < 21, errs


def test_invariant_eqn14_tight_adaptive_solver():
    # DOP853 with rtol = 1e-11, atol = 1e-13: the local error per step is below
    # rtol * |y| + atol; over ~1e3 accepted steps with states O(1) the global error stays
    # below ~1e-8, so the invariant must hold to 1e-8 (it is exact for the ODE).
    traj = integrate_modes(P0, S0, alpha_p=ALPHA, eta=ETA, sigma2=SIG2, beta=0.4, tau0=0.0,
                           t_end=20.0, solver="DOP853", rtol=1e-11, atol=1e-13, n_save=41)
    assert _invariant_error(traj, ALPHA, ETA) < 1e-8


def test_euler_is_first_order():
    # Forward Euler: global error C dt, so halving dt halves it: ratio 2, accepted [1.8, 2.2]
    # (O(dt) relative corrections at dt = 0.01).
    kw = dict(alpha_p=ALPHA, eta=ETA, sigma2=SIG2, t_end=10.0, n_save=11, solver="euler")
    errs = [_invariant_error(integrate_modes(P0, S0, dt=dt, **kw), ALPHA, ETA) for dt in (0.01, 0.005)]
    assert 1.8 < errs[0] / errs[1] < 2.2, errs


@pytest.mark.parametrize("solver", ["euler", "rk4"])
@pytest.mark.parametrize("beta", [None, 0.4])
def test_numba_and_numpy_paths_agree(solver, beta):
    pytest.importorskip("numba")
    rng = np.random.default_rng(1)
    n = 300
    kw = dict(alpha_p=rng.uniform(0.5, 2, n), eta=rng.uniform(0, 0.2, n), sigma2=rng.uniform(0, 0.5, n),
              tau=rng.uniform(0.5, 1, n), beta=beta, tau0=rng.uniform(0, 1, n), t_end=5.0, dt=0.01,
              n_save=6, solver=solver)
    p0, s0 = rng.uniform(0, 1.5, n), rng.uniform(0, 1.5, n)
    a = integrate_modes(p0, s0, backend="numba", **kw)
    b = integrate_modes(p0, s0, backend="numpy", **kw)
    # Both paths evaluate the same function with the same operations in the same order: they
    # agree bit for bit (as measured) unless a compiler contracts a*b+c into a fused
    # multiply-add (<= 1 ulp per operation, ~1e-16 relative, accumulated over 500 steps of a
    # mostly contracting flow: well below 1e-11). Any real discrepancy (a different formula or
    # update order) shows up at O(dt) = 1e-2, so rtol 1e-11 separates the two cleanly.
    np.testing.assert_array_equal(a.t, b.t)
    for v in ("p", "s", "tau"):
        np.testing.assert_allclose(getattr(a, v), getattr(b, v), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_non_finite_names_variable_and_time(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    # Euler at dt = 0.1 with alpha_p s lam_s = 1e4 is far beyond its stability limit (dt * rate
    # < 2): p overflows first. With s = 0, p only decays, while an EMA rate beta dt = 3 > 2
    # makes tau alone diverge (it then grows ~ -p tau^2).
    kw = dict(alpha_p=10.0, eta=0.01, sigma2=0.0, solver="euler", t_end=10.0, backend=backend)
    with pytest.raises(NonFiniteStateError) as err:
        integrate_modes(np.linspace(1, 2, 100), 1e3, dt=0.1, **kw)
    assert err.value.variable == "p" and 0 < err.value.t < 10 and "'p'" in str(err.value)
    with pytest.raises(NonFiniteStateError) as err:
        integrate_modes(np.full(100, 0.5), 0.0, beta=300.0, dt=0.01, **kw)
    assert err.value.variable == "tau" and 0 < err.value.t < 10


def test_non_finite_reports_agree_between_backends():
    # EMA from tau0 = 0 with p0 < 0 diverges (tau grows without bound as s -> 0, where assumption
    # A1 breaks down); both backends must report the same first step, variable and index.
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    p0, s0, alpha_p = rng.uniform(-1, 2, 500), rng.uniform(0, 2, 500), rng.uniform(0.5, 2, 500)
    errors = []
    for backend in ("numba", "numpy"):
        with pytest.raises(NonFiniteStateError) as err:
            integrate_modes(p0, s0, alpha_p=alpha_p, eta=0.05, sigma2=0.1, beta=0.4,
                            t_end=20.0, dt=0.01, solver="euler", backend=backend)
        errors.append((err.value.step, err.value.t, err.value.variable, err.value.index))
    assert errors[0] == errors[1]


def test_long_time_fates_on_parabola():
    # On the parabola c = 0 for all t, so Eqn 16 is the exact flow: p -> p*_+ from p0 > p*_-,
    # p -> 0 from p0 < p*_-, and p -> 0 always when eta > eta_c. Rates: near 0 the decay is
    # exp(-eta t) (Eqn 16 slope -eta), near p*_+ it is min(|f'(p*_+)|, 2 eta); with eta >= 0.05
    # and t_end = 1200 both factors are < e^-60, so 1e-8 is a safe tolerance. Starts keep a
    # distance >= 0.1 from p*_-: leaving the unstable point takes ~log(1/0.1)/f'(p*_-) < 100.
    cases = [(1.0, 0.05, 0.0, 1.0), (2.0, 0.1, 0.5, 1.0), (0.5, 0.1, 0.0, 0.8), (1.0, 0.3, 0.0, 1.0)]
    for alpha_p, eta, sigma2, tau in cases:
        pm, pp = fixed_point_branches(tau, eta, sigma2)
        p0 = np.linspace(-0.6, 1.6, 45)
        if np.isfinite(pp):
            p0 = p0[np.abs(p0 - pm) > 0.1]
        traj = integrate_modes(p0, p0 ** 2 / alpha_p, alpha_p=alpha_p, eta=eta, sigma2=sigma2, tau=tau,
                               t_end=1200.0, dt=0.02, n_save=2)
        target = np.where(p0 > pm, pp, 0.0) if np.isfinite(pp) else np.zeros_like(p0)
        np.testing.assert_allclose(traj.p[-1], target, atol=1e-8)
        np.testing.assert_allclose(traj.s[-1], target ** 2 / alpha_p, atol=1e-8)


def test_ema_tau_goes_to_one_for_surviving_modes():
    # A surviving mode has s -> s_inf > 0, so r = (ds/dt)/(2s) -> 0 and Eqn 13 becomes
    # dtau/dt = beta (1 - tau). Variation of constants from T/2 to T gives
    # |1 - tau(T)| <= exp(-beta T/2) |1 - tau(T/2)| + max_{t >= T/2} |tau r| / beta: the bound
    # is computed from the trajectory itself (r from Eqn 12), plus 1e-12 for round-off.
    beta, T = 0.4, 600.0
    p0 = np.array([0.5, 0.9, 1.4])[:, None]
    s0 = np.array([0.3, 1.0])[None, :]
    kw = dict(alpha_p=1.0, eta=0.02, sigma2=0.1)
    traj = integrate_modes(p0, s0, beta=beta, tau0=0.0, t_end=T, dt=0.01, n_save=401, **kw)
    assert np.all(traj.s[-1] > 0.1)  # all survive
    half = traj.t >= T / 2
    _, ds, _ = mode_rhs(traj.p, traj.s, traj.tau, beta=beta, **kw)
    r = ds / (2 * traj.s)
    bound = (np.exp(-beta * T / 2) * np.abs(1 - traj.tau[half][0])
             + np.max(np.abs(traj.tau * r)[half], axis=0) / beta + 1e-12)
    assert np.all(np.abs(1 - traj.tau[-1]) <= bound)
    # and the tail of r has died out (c decays as exp(-2 eta t) = e^-24 by T): tau(T) = 1 to 1e-6
    assert np.all(np.abs(1 - traj.tau[-1]) < 1e-6)


def test_scalar_byol_rhs_is_the_mode_system_under_the_map():
    # With p = w_p, s = w^2, tau = w_a / w the chain rule maps the scalar BYOL field onto
    # Eqns 11-13 exactly (lambda_s = 1 + sigma2, lambda_d = 1); only round-off differs:
    # a few ulp of O(10) terms, so rtol 1e-12.
    rng = np.random.default_rng(3)
    w_p, w, w_a = rng.uniform(-1, 2, 50), rng.uniform(0.2, 2, 50), rng.uniform(-1, 2, 50)
    kw = dict(alpha_p=rng.uniform(0.5, 2, 50), eta=rng.uniform(0, 0.2, 50), sigma2=rng.uniform(0, 0.5, 50))
    dwp, dw, dwa = scalar_byol_rhs(w_p, w, w_a, beta=0.4, **kw)
    dp, ds, dtau = mode_rhs(w_p, w ** 2, w_a / w, beta=0.4, **kw)
    np.testing.assert_allclose(dwp, dp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(2 * w * dw, ds, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dwa / w - w_a * dw / w ** 2, dtau, rtol=1e-12, atol=1e-12)


def test_scalar_byol_trajectory_matches_mode_trajectory():
    # Same ODE in two coordinate systems, both solved with DOP853 at rtol 1e-11: each is
    # accurate to ~1e-9 over t = 30 (global error ~ steps * rtol), so they agree to 1e-7.
    w_p0 = np.array([0.1, 0.6, 1.2])[:, None]
    w0 = np.array([0.7, 1.3])[None, :]
    w_a0 = 0.3 * w0
    kw = dict(alpha_p=1.5, eta=0.02, sigma2=0.2, t_end=30.0, solver="DOP853", rtol=1e-11, atol=1e-13, n_save=31)
    sc = integrate_scalar_byol(w_p0, w0, w_a0, beta=0.4, **kw)
    md = integrate_modes(w_p0, w0 ** 2, beta=0.4, tau0=w_a0 / w0, **kw)
    np.testing.assert_allclose(sc.w_p, md.p, atol=1e-7)
    np.testing.assert_allclose(sc.s, md.s, atol=1e-7)
    np.testing.assert_allclose(sc.tau, md.tau, atol=1e-7)


def test_shapes_broadcast_and_fixed_tau_is_constant():
    traj = integrate_modes(np.array([0.2, 0.5, 0.9])[:, None], 0.5, alpha_p=1.0, eta=np.array([0, 0.01, 0.1, 1.0]),
                           sigma2=0.0, tau=0.9, t_end=1.0, dt=0.1, n_save=6)
    assert traj.t.shape == (6,) and traj.p.shape == (6, 3, 4) == traj.s.shape == traj.tau.shape
    np.testing.assert_allclose(traj.t, np.linspace(0, 1, 6), atol=1e-12)
    assert np.all(traj.tau == 0.9)


def test_scipy_solver_matches_rk4():
    # RK4 at dt = 0.005 has global error ~1e-10 here (the order test above measures ~1e-9 at
    # dt = 0.02 and 16x less per halving); DOP853 at rtol 1e-11 is closer still: 1e-8 is safe.
    kw = dict(alpha_p=ALPHA, eta=ETA, sigma2=SIG2, beta=0.4, tau0=0.1, t_end=10.0, n_save=11)
    a = integrate_modes(P0, S0, solver="rk4", dt=0.005, **kw)
    b = integrate_modes(P0, S0, solver="DOP853", rtol=1e-11, atol=1e-13, **kw)
    for v in ("p", "s", "tau"):
        np.testing.assert_allclose(getattr(a, v), getattr(b, v), atol=1e-8)


@pytest.mark.parametrize("bad, name", [
    (dict(sigma2=-0.1), "sigma2"), (dict(alpha_p=0.0), "alpha_p"), (dict(alpha_p=-1.0), "alpha_p"),
    (dict(eta=-0.01), "eta"), (dict(beta=0.0), "beta"), (dict(beta=-1.0), "beta"), (dict(s0=-0.5), "s0"),
    (dict(p0=np.nan), "p0"), (dict(p0=np.ones(3), eta=np.ones(4) * 0.1), "broadcast"),
    (dict(solver="heun"), "solver"), (dict(dt=0.0), "dt"), (dict(n_save=1), "n_save"),
    (dict(t_end=1.005), "t_end"), (dict(backend="gpu"), "backend"), (dict(tau=np.inf), "tau"),
])
def test_bad_input_names_the_argument(bad, name):
    kw = dict(p0=0.5, s0=0.5, alpha_p=1.0, eta=0.0, sigma2=0.0, t_end=1.0, dt=0.01)
    kw.update(bad)
    with pytest.raises(ValueError, match=name):
        integrate_modes(kw.pop("p0"), kw.pop("s0"), **kw)


@pytest.mark.parametrize("bad, name", [(dict(beta=0.0), "beta"), (dict(sigma2=-1.0), "sigma2"),
                                       (dict(w0=np.ones(2), w_p0=np.ones(3)), "broadcast"),
                                       (dict(alpha_p=0.0), "alpha_p")])
def test_scalar_bad_input(bad, name):
    kw = dict(w_p0=0.1, w0=1.0, w_a0=0.0, alpha_p=1.0, eta=0.0, sigma2=0.0, beta=0.4, t_end=1.0)
    kw.update(bad)
    with pytest.raises(ValueError, match=name):
        integrate_scalar_byol(kw.pop("w_p0"), kw.pop("w0"), kw.pop("w_a0"), **kw)


def test_numpy_fallback_when_numba_is_missing(monkeypatch):
    import dynamics.modes as modes

    monkeypatch.setattr(modes, "_numba_kernels", lambda: None)
    traj = integrate_modes(P0, S0, alpha_p=ALPHA, eta=ETA, sigma2=SIG2, t_end=1.0, dt=0.1, n_save=3)
    assert traj.p.shape == (3, 4, 3) and np.isfinite(traj.p).all()
    with pytest.raises(ValueError, match="backend"):
        integrate_modes(P0, S0, alpha_p=ALPHA, eta=ETA, sigma2=SIG2, t_end=1.0, backend="numba")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_output_shape_is_time_then_batch_for_every_backend(backend):
    """The documented layout (n_save, *batch_shape) must not depend on the backend: a scalar
    start gives (n_save,), a (2, 3) batch gives (n_save, 2, 3)."""
    tr = integrate_modes(0.5, 0.5, alpha_p=1.0, eta=0.01, sigma2=0.0, t_end=1.0, n_save=11,
                         backend=backend)
    assert tr.p.shape == tr.s.shape == tr.tau.shape == (11,)
    tr = integrate_modes(np.full((2, 3), 0.5), 0.5, alpha_p=1.0, eta=0.01, sigma2=0.0, t_end=1.0,
                         n_save=11, backend=backend)
    assert tr.p.shape == (11, 2, 3)
