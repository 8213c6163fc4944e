"""Matrix gradient flow (Lemma 1, Eqns 2-4): conservation law (Theorem 1), per-mode reduction
(Eqns 11-13), collapse without stop-gradient / predictor (Theorem 2), input checks and CLI."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from scipy.stats import ortho_group

from dynamics.integrate import NonFiniteStateError
from dynamics.cli import register_matrix as register
from dynamics.matrix import integrate_matrix


def _general_data(n1: int, seed: int = 1, noise_floor: float = 0.0):
    """A non-isotropic, non-commuting pair (X, X') of symmetric PSD matrices."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n1, n1))
    B = rng.standard_normal((n1, n1))
    return A @ A.T / n1, 0.3 * B @ B.T / n1 + noise_floor * np.eye(n1)


def _init(n1: int, n2: int, seed: int = 2, wp_scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n2, n1)) / np.sqrt(n1),
            wp_scale * rng.standard_normal((n2, n2)) / np.sqrt(n2))


# --------------------------------------------------------------------------- Theorem 1


@pytest.mark.parametrize("beta", [None, 1.0], ids=["SimSiam", "BYOL"])
@pytest.mark.parametrize("eta", [0.0, 0.1])
def test_balance_residual_is_rk4_truncation_error(beta, eta):
    """Theorem 1: W W^T - Wp^T Wp/alpha_p = exp(-2 eta t) C exactly, for any Wa, on general
    (non-isotropic, non-commuting) X, X'. RK4 does not conserve quadratic invariants exactly:
    its global error is O(dt^4 t), and the residual (a smooth function of the state, zero on the
    exact flow) inherits it. So (i) halving dt must divide the residual by ~2^4 = 16 -- we accept
    [8, 32], the asymptotic factor up to higher-order terms (measured 18-21 here); a conserved
    quantity computed wrongly (wrong sign of a term, missing exp(-2 eta t)) would give an O(1)
    residual independent of dt; (ii) at dt = 0.0125 the residual is below 1e-5 ||C|| (measured
    ~1e-6 ||C||, i.e. ~1e-6 absolute with ||C|| ~ 1)."""
    X, Xp = _general_data(6)
    W0, Wp0 = _init(6, 5)
    kw = dict(X=X, Xp=Xp, alpha_p=1.5, eta=eta, beta=beta, t_end=5.0, n_save=11)
    coarse = integrate_matrix(W0, Wp0, dt=0.025, **kw).obs.balance_residual.max()
    fine_traj = integrate_matrix(W0, Wp0, dt=0.0125, **kw)
    fine = fine_traj.obs.balance_residual.max()
    C = W0 @ W0.T - Wp0.T @ Wp0 / 1.5
    assert 8.0 < coarse / fine < 32.0
    assert fine < 1e-5 * np.linalg.norm(C)
    if eta > 0:
        # the decay term matters: W W^T - Wp^T Wp/alpha_p itself has shrunk by exp(-2 eta t_end)
        W, Wp = fine_traj.W[-1], fine_traj.Wp[-1]
        B_end = np.linalg.norm(W @ W.T - Wp.T @ Wp / 1.5)
        assert B_end == pytest.approx(np.exp(-2 * eta * 5.0) * np.linalg.norm(C), rel=1e-4)


def test_balance_fails_for_symmetrised_flow():
    """Negative control: with a symmetrised predictor flow (A3), d(Wp^2)/dt differs from
    d(W W^T)/dt by (1+sigma2)/2 [Wp,[Wp,F]]-type terms, so the residual becomes O(||C||) unless
    F and Wp commute -- the check above can fail."""
    X, Xp = _general_data(6)
    W0, Wp0 = _init(6, 5)
    Wp0 = 0.5 * (Wp0 + Wp0.T)
    traj = integrate_matrix(W0, Wp0, X=X, Xp=Xp, alpha_p=1.5, symmetric_wp=True, t_end=5.0,
                            dt=0.0125, n_save=11)
    assert traj.obs.balance_residual.max() > 1e-2
    assert traj.obs.wp_antisym_norm.max() == 0.0   # A3: Wp stays exactly symmetric


# --------------------------------------------------------------------------- per-mode reduction


def _per_mode(p0, s0, tau0, *, alpha_p, eta, sigma2, beta, t_eval):
    """Eqns 11-13 integrated mode by mode (vectorised over modes) to tight tolerance;
    beta=None is SimSiam (tau = 1)."""
    n = len(p0)

    def rhs(t, y):
        p, s, tau = y[:n], y[n:2 * n], y[2 * n:]
        g = tau - (1 + sigma2) * p
        dp = alpha_p * s * g - eta * p                            # Eqn 11
        ds = 2 * p * s * g - 2 * eta * s                          # Eqn 12
        dtau = np.zeros(n) if beta is None else beta * (1 - tau) - tau * ds / (2 * s)  # Eqn 13
        return np.concatenate([dp, ds, dtau])

    sol = solve_ivp(rhs, (0, t_eval[-1]), np.concatenate([p0, s0, tau0]), t_eval=t_eval,
                    method="DOP853", rtol=1e-12, atol=1e-14)
    assert sol.status == 0
    return sol.y[:n].T, sol.y[n:2 * n].T


@pytest.mark.parametrize("beta", [None, 0.8], ids=["SimSiam", "BYOL"])
@pytest.mark.parametrize("symmetric_wp", [False, True])
def test_aligned_matrix_flow_matches_per_mode_odes(beta, symmetric_wp):
    """With X = I, X' = sigma2 I and W0 W0^T, Wp0 (and Wa0 = tau0 W0) sharing the eigenbasis U,
    the matrix flow stays in that basis (Theorem 3 with [F,Wp] = 0) and each eigenpair obeys
    Eqns 11-12 (and Eqn 13 for tau_j = a_j / w_j under the EMA). Compared as sorted spectra.
    Tolerance 1e-7: the matrix side is RK4 at dt = 0.01 (global error O(dt^4 t), dt^4 = 1e-8,
    with rates O(1); measured 1.3e-9, dropping 16x when dt halves), the per-mode side DOP853 at
    rtol 1e-12."""
    n, sigma2, alpha_p, eta = 5, 0.2, 1.3, 0.05
    U = ortho_group.rvs(n, random_state=4)
    V = ortho_group.rvs(n, random_state=5)
    w = np.array([1.2, 0.9, 0.7, 0.5, 0.3])
    p0 = np.array([0.8, -0.3, 0.4, 0.1, 0.6])   # includes a negative p and a mode below the parabola
    W0, Wp0 = U @ np.diag(w) @ V.T, U @ np.diag(p0) @ U.T
    tau0 = 1.0 if beta is None else 0.5
    extra = {} if beta is None else {"beta": beta, "Wa0": tau0 * W0}
    traj = integrate_matrix(W0, Wp0, X=np.eye(n), Xp=sigma2 * np.eye(n), alpha_p=alpha_p,
                            eta=eta, symmetric_wp=symmetric_wp, t_end=5.0, dt=0.01, n_save=11,
                            **extra)
    p, s = _per_mode(p0, w ** 2, np.full(n, tau0), alpha_p=alpha_p, eta=eta, sigma2=sigma2,
                     beta=beta, t_eval=traj.t)
    np.testing.assert_allclose(traj.obs.s, np.sort(s, axis=1)[:, ::-1], rtol=0, atol=1e-7)
    np.testing.assert_allclose(traj.obs.p, np.sort(p, axis=1)[:, ::-1], rtol=0, atol=1e-7)
    # alignment is kept: [F, Wp] stays at round-off (its flow is linear in [F, Wp], Eqn 8)
    assert traj.obs.commutator_norm.max() < 1e-12


# --------------------------------------------------------------------------- collapse


def _collapse_setup():
    X, Xp = _general_data(6, noise_floor=0.5)  # lambda_min(X') >= 0.5
    W0, Wp0 = _init(6, 5, wp_scale=0.3)        # small Wp0: C = W0 W0^T - Wp0^T Wp0 > 0 mostly
    return X, Xp, W0, Wp0


def test_no_stop_gradient_collapses_at_the_theorem_2_rate():
    """Theorem 2: d vec(W)/dt = -H vec(W) with H >= (lambda_min(X') + eta) I (both Kronecker
    terms are PSD and X' (x) (Wp^T Wp + I) >= X' (x) I), hence
    ||W(t)||_F <= exp(-(lambda_min(X') + eta) t) ||W(0)||_F whatever Wp does. Slack 1e-8
    relative covers the RK4 error (~1e-9 at dt = 0.01)."""
    X, Xp, W0, Wp0 = _collapse_setup()
    eta = 0.02
    traj = integrate_matrix(W0, Wp0, X=X, Xp=Xp, eta=eta, stop_grad=False, t_end=10.0, dt=0.01,
                            n_save=51)
    rate = np.linalg.eigvalsh(Xp)[0] + eta
    norms = np.linalg.norm(traj.W, axis=(1, 2))
    assert np.all(norms <= np.exp(-rate * traj.t) * norms[0] * (1 + 1e-8))
    assert norms[-1] < 1e-2 * norms[0]          # exp(-5.2) = 5.5e-3 at t = 10


def test_no_predictor_collapses_exactly():
    """Wp = I, Wa = W: dW/dt = -W (X' + eta I), so W(t) = W0 expm(-(X' + eta I) t).
    Tolerance 1e-8 relative: RK4 at dt = 0.01 on a linear system with rates <= ||X'|| + eta ~ 1
    has relative error ~ (dt ||X'||)^4 t / 120 ~ 1e-10."""
    X, Xp, W0, _ = _collapse_setup()
    eta = 0.02
    traj = integrate_matrix(W0, None, X=X, Xp=Xp, eta=eta, predictor=False, t_end=10.0, dt=0.01,
                            n_save=6)
    for t, W in zip(traj.t, traj.W):
        exact = W0 @ expm(-(Xp + eta * np.eye(6)) * t)
        np.testing.assert_allclose(W, exact, rtol=0, atol=1e-8 * np.linalg.norm(W0))
    assert np.linalg.norm(traj.W[-1]) < 1e-2 * np.linalg.norm(W0)
    np.testing.assert_array_equal(traj.Wp, np.broadcast_to(np.eye(5), traj.Wp.shape))


@pytest.mark.parametrize("beta", [None, 1.0], ids=["SimSiam", "BYOL"])
def test_stop_gradient_with_predictor_does_not_collapse(beta):
    """Same init and data. With eta = 0, Theorem 1 gives W W^T = C + Wp^T Wp / alpha_p >= C, so
    lambda_max(W W^T) >= lambda_max(C) > 0 for all t: no collapse, whatever Wa does. Slack 1e-6
    for the RK4 drift of the invariant (~1e-8 here)."""
    X, Xp, W0, Wp0 = _collapse_setup()
    traj = integrate_matrix(W0, Wp0, X=X, Xp=Xp, beta=beta, t_end=10.0, dt=0.01, n_save=51)
    lam_C = np.linalg.eigvalsh(W0 @ W0.T - Wp0.T @ Wp0)[-1]
    assert lam_C > 0.1
    top = np.linalg.eigvalsh(traj.W @ np.swapaxes(traj.W, 1, 2))[:, -1]
    assert np.all(top >= lam_C - 1e-6)
    assert np.linalg.norm(traj.W[-1]) > 0.3 * np.linalg.norm(W0)


# --------------------------------------------------------------------------- observables / API


def test_observables_and_saving(tmp_path):
    """Shapes and definitions of the saved observables; JSON/NPZ round trip."""
    X, Xp = _general_data(4)
    W0, Wp0 = _init(4, 3)
    traj = integrate_matrix(W0, Wp0, X=X, Xp=Xp, beta=0.5, Wa0=np.zeros_like(W0), t_end=1.0,
                            dt=0.01, n_save=11)
    assert traj.t.shape == (11,) and traj.W.shape == (11, 3, 4) and traj.Wa.shape == (11, 3, 4)
    assert traj.t[-1] == pytest.approx(1.0)
    F_end = traj.W[-1] @ X @ traj.W[-1].T
    np.testing.assert_allclose(traj.obs.s[-1], np.sort(np.linalg.eigvalsh(F_end))[::-1],
                               atol=1e-12)
    assert traj.obs.wa_correlation[0] == 0.0
    assert traj.obs.tau[0] == 0.0                      # Wa(0) = 0  ->  tau(0) = 0
    js, npz = traj.save(tmp_path / "run")
    summary = json.loads(js.read_text())
    assert summary["params"]["Wa0"] == "given" and summary["params"]["method"] == "BYOL"
    assert summary["final"]["s"] == pytest.approx(traj.obs.s[-1].tolist())
    data = np.load(npz)
    np.testing.assert_array_equal(data["Wa"], traj.Wa)
    np.testing.assert_array_equal(data["obs_commutator_norm"], traj.obs.commutator_norm)


def test_default_target_is_a_copy_of_W0():
    X, Xp = _general_data(4)
    W0, Wp0 = _init(4, 3)
    traj = integrate_matrix(W0, Wp0, X=X, Xp=Xp, beta=0.5, t_end=0.1, dt=0.01, n_save=2)
    np.testing.assert_array_equal(traj.Wa[0], W0)
    assert traj.params["Wa0"] == "copy of W0"
    assert traj.obs.wa_correlation[0] == pytest.approx(1.0)


def test_non_finite_state_names_the_variable():
    X, Xp = _general_data(4)
    W0, Wp0 = _init(4, 3)
    with pytest.raises(NonFiniteStateError) as err, np.errstate(over="ignore", invalid="ignore"):
        integrate_matrix(1e3 * W0, 1e3 * Wp0, X=X, Xp=Xp, t_end=10.0, solver="euler", dt=0.5)
    assert err.value.variable.split("[")[0] in ("W", "Wp")


@pytest.mark.parametrize("change, name", [
    ({"X": np.array([[1.0, 0.5], [0.0, 1.0]])}, "X"),                 # not symmetric
    ({"X": np.diag([1.0, -1.0])}, "X"),                                # not PSD
    ({"Xp": np.diag([1.0, -0.5])}, "Xp"),
    ({"Xp": np.eye(3)}, "Xp"),                                         # wrong shape
    ({"W0": np.ones((3, 3))}, "W0"),                                   # n1 mismatch
    ({"Wp0": np.ones((2, 2))}, "Wp0"),
    ({"beta": 0.5, "Wa0": np.ones((2, 3))}, "Wa0"),
    ({"Wa0": np.ones((3, 2))}, "Wa0"),                                 # Wa0 without EMA
    ({"alpha_p": 0.0}, "alpha_p"),
    ({"alpha_p": -1.0}, "alpha_p"),
    ({"eta": -0.1}, "eta"),
    ({"beta": 0.0}, "beta"),
    ({"beta": -1.0}, "beta"),
    ({"beta": 0.5, "stop_grad": False}, "beta"),
    ({"symmetric_wp": True, "Wp0": np.array([[1.0, 2.0, 0], [0, 1.0, 0], [0, 0, 1.0]])}, "Wp0"),
    ({"solver": "leapfrog"}, "solver"),
    ({"t_end": 0.0}, "t_end"),
    ({"dt": -0.01}, "dt"),
])
def test_bad_input_names_the_argument(change, name):
    kw = dict(W0=np.ones((3, 2)), Wp0=np.eye(3), X=np.eye(2), Xp=0.1 * np.eye(2), t_end=0.1,
              dt=0.01)
    kw.update(change)
    W0, Wp0 = kw.pop("W0"), kw.pop("Wp0")
    with pytest.raises(ValueError, match=rf"^{name}:"):
        integrate_matrix(W0, Wp0, **kw)


def test_cli_matrix(tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    out = tmp_path / "m"
    args = parser.parse_args(["matrix", "--n1", "4", "--n2", "3", "--beta", "0.5", "--eta",
                              "0.01", "--t-end", "0.5", "--dt", "0.05", "--n-save", "6",
                              "--seed", "3", "--out", str(out)])
    summary = args.func(args)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["params"]["method"] == "BYOL" and on_disk["params"]["seed"] == 3
    assert len(on_disk["final"]["s"]) == 3 and on_disk["n_saved"] == 6
    data = np.load(out / "trajectory.npz")
    assert data["W"].shape == (6, 3, 4)
    # the balance law holds in the CLI run too (RK4, dt = 0.05, t = 0.5: drift << 1e-4)
    assert on_disk["final"]["balance_residual"] < 1e-4
