"""Reduced (F, Wp) dynamics (Eqns 7, 62): equivalence with the matrix flow, eigenspace alignment
(Theorem 3), lambda_min(K) (Eqn 9), input checks and CLI."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy.stats import ortho_group

from dynamics.matrix import integrate_matrix
from dynamics.observables import K_matrix
from dynamics.cli import register_reduced as register
from dynamics.reduced import integrate_reduced

N, SIGMA2, ALPHA_P, ETA = 5, 0.2, 1.3, 0.05


def _start(symmetric: bool, seed: int = 7):
    rng = np.random.default_rng(seed)
    W0 = rng.standard_normal((N, N)) / np.sqrt(N)
    A = rng.standard_normal((N, N)) / np.sqrt(N)
    return W0, (0.5 * (A + A.T) if symmetric else A)


@pytest.mark.parametrize("symmetric", [True, False], ids=["Eqn7", "Eqn62"])
def test_reduced_matches_matrix_flow(symmetric):
    """SimSiam (tau = 1), X = I, X' = sigma2 I, general non-aligned start: F = W W^T and Wp of
    the matrix flow (symmetrised predictor for Eqn 7) obey Eqn 7 / Eqn 62 exactly, so both RK4
    solutions agree up to their own truncation errors, O(dt^4 t) each. Tolerance 5e-7: at
    dt = 0.01 the difference is measured ~4e-8 and shrinks 16x when dt halves (entries of F,
    Wp are O(1))."""
    W0, Wp0 = _start(symmetric)
    kw = dict(alpha_p=ALPHA_P, eta=ETA, t_end=5.0, dt=0.01, n_save=11)
    mat = integrate_matrix(W0, Wp0, X=np.eye(N), Xp=SIGMA2 * np.eye(N), symmetric_wp=symmetric,
                           **kw)
    red = integrate_reduced(W0 @ W0.T, Wp0, sigma2=SIGMA2, tau=1.0, symmetric=symmetric, **kw)
    np.testing.assert_allclose(red.F, mat.W @ np.swapaxes(mat.W, 1, 2), rtol=0, atol=5e-7)
    np.testing.assert_allclose(red.Wp, mat.Wp, rtol=0, atol=5e-7)
    np.testing.assert_allclose(red.obs.commutator_norm, mat.obs.commutator_norm, atol=1e-6)
    # the dynamics are not trivial over this window: alignment changes by O(1)
    assert abs(red.obs.commutator_norm[-1] - red.obs.commutator_norm[0]) > 0.1
    # F stays exactly symmetric (terms evaluated as M + M^T), Eqn 7 keeps Wp symmetric
    assert np.array_equal(red.F, np.swapaxes(red.F, 1, 2))
    if symmetric:
        assert red.obs.wp_antisym_norm.max() == 0.0


def test_eqn62_conserves_balance_and_eqn7_does_not():
    """Theorem 1 in reduced form: F - Wp^T Wp/alpha_p decays as exp(-2 eta t) under Eqn 62 (its
    RK4 drift is ~1e-7 at dt = 0.01; bound 1e-6), while the symmetrised Eqn 7 breaks it by
    O(||[Wp,[Wp,F]]||) -- here > 1e-2."""
    kw = dict(alpha_p=ALPHA_P, eta=ETA, sigma2=SIGMA2, t_end=5.0, dt=0.01, n_save=11)
    W0, A = _start(False)
    assert integrate_reduced(W0 @ W0.T, A, symmetric=False, **kw).obs.balance_residual.max() < 1e-6
    W0, S = _start(True)
    assert integrate_reduced(W0 @ W0.T, S, symmetric=True, **kw).obs.balance_residual.max() > 1e-2


@pytest.mark.parametrize("alpha_p, eta, tau", [(2.0, 0.1, 1.0), (1.0, 0.2, 1.0), (3.0, 0.0, 0.7)])
def test_commutator_decays_at_least_at_rate_2_lambda0(alpha_p, eta, tau):
    """Theorem 3 (Eqn 8): d[F,Wp]/dt = -[F,Wp] K - K [F,Wp], so d||[F,Wp]||/dt
    <= -2 lambda_min(K) ||[F,Wp]|| and ||[F,Wp](t)|| <= exp(-2 lambda0 t) ||[F,Wp](0)|| when
    lambda_min(K) >= lambda0 > 0 on [0, t]. Parameters: F0 >= 0.3 I, so K starts positive
    definite; first asserted along the whole trajectory (saved at every RK4 step). lambda0 is
    the sampled minimum lowered by the largest change of lambda_min(K) over one step (so it
    bounds the minimum between samples). Also checked step by step with the local minimum.
    Slack 1e-8 relative for the RK4 error (~1e-10 in ||[F,Wp]||)."""
    rng = np.random.default_rng(11)
    n = 6
    W = rng.standard_normal((n, n)) / np.sqrt(n)
    F0 = W @ W.T + 0.3 * np.eye(n)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    dt, t_end = 0.01, 4.0
    traj = integrate_reduced(F0, 0.5 * (A + A.T), alpha_p=alpha_p, eta=eta, sigma2=SIGMA2,
                             tau=tau, t_end=t_end, dt=dt, n_save=int(t_end / dt) + 1)
    lam = traj.obs.lambda_min_K
    jump = np.abs(np.diff(lam))
    lam0 = lam.min() - jump.max()
    assert lam0 > 0.05                                  # K positive definite throughout
    c = traj.obs.commutator_norm
    assert np.all(c <= np.exp(-2 * lam0 * traj.t) * c[0] * (1 + 1e-8))
    local = np.minimum(lam[1:], lam[:-1]) - jump
    assert np.all(c[1:] <= np.exp(-2 * local * dt) * c[:-1] * (1 + 1e-8))
    assert c[-1] < 0.1 * c[0]                           # and the bound is not vacuous here


def test_lambda_min_K_on_aligned_state_matches_per_mode_formula():
    """On a common eigenbasis K is diagonal with entries
    (1+sigma2)[(alpha_p/2) s_j + p_j^2] - tau p_j + (3/2) eta (Eqn 9 mode by mode)."""
    U = ortho_group.rvs(4, random_state=0)
    s, p = np.array([2.0, 1.0, 0.5, 0.1]), np.array([0.3, 0.9, -0.2, 0.5])
    F, Wp = U @ np.diag(s) @ U.T, U @ np.diag(p) @ U.T
    tau = 0.8
    per_mode = (1 + SIGMA2) * (ALPHA_P / 2 * s + p ** 2) - tau * p + 1.5 * ETA
    K = K_matrix(F, Wp, alpha_p=ALPHA_P, eta=ETA, sigma2=SIGMA2, tau=tau)
    np.testing.assert_allclose(np.linalg.eigvalsh(K), np.sort(per_mode), atol=1e-12)
    traj = integrate_reduced(F, Wp, alpha_p=ALPHA_P, eta=ETA, sigma2=SIGMA2, tau=tau, t_end=0.01,
                             dt=0.01, n_save=2)
    assert traj.obs.lambda_min_K[0] == pytest.approx(per_mode.min(), abs=1e-12)
    assert traj.obs.wa_correlation is None


@pytest.mark.parametrize("change, name", [
    ({"F0": np.array([[1.0, 0.3], [0.0, 1.0]])}, "F0"),
    ({"F0": np.diag([1.0, -0.2])}, "F0"),
    ({"Wp0": np.eye(3)}, "Wp0"),
    ({"Wp0": np.array([[1.0, 0.5], [0.0, 1.0]])}, "Wp0"),     # Eqn 7 needs a symmetric Wp0
    ({"alpha_p": 0.0}, "alpha_p"),
    ({"eta": -1.0}, "eta"),
    ({"sigma2": -0.1}, "sigma2"),
    ({"tau": float("nan")}, "tau"),
    ({"solver": "bogus"}, "solver"),
])
def test_bad_input_names_the_argument(change, name):
    kw = dict(F0=np.eye(2), Wp0=np.eye(2), alpha_p=1.0, eta=0.0, sigma2=0.1, t_end=0.1, dt=0.01)
    kw.update(change)
    F0, Wp0 = kw.pop("F0"), kw.pop("Wp0")
    with pytest.raises(ValueError, match=rf"^{name}:"):
        integrate_reduced(F0, Wp0, **kw)


def test_unsymmetrised_accepts_general_wp():
    A = np.array([[1.0, 0.5], [0.0, 1.0]])
    traj = integrate_reduced(np.eye(2), A, alpha_p=1.0, eta=0.0, sigma2=0.1, symmetric=False,
                             t_end=0.1, dt=0.01, n_save=3)
    assert traj.obs.wp_antisym_norm[0] == pytest.approx(np.linalg.norm(0.5 * (A - A.T)))


def test_cli_reduced(tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    out = tmp_path / "r"
    args = parser.parse_args(["reduced", "--n1", "4", "--n2", "4", "--tau", "0.8", "--t-end",
                              "0.5", "--dt", "0.05", "--n-save", "6", "--out", str(out)])
    args.func(args)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"]["equation"] == "Eqn 7" and summary["params"]["tau"] == 0.8
    assert summary["final"]["wp_antisym_norm"] == 0.0
    data = np.load(out / "trajectory.npz")
    assert data["F"].shape == (6, 4, 4) and data["obs_lambda_min_K"].shape == (6,)
    args = parser.parse_args(["reduced", "--unsymmetrised", "--t-end", "0.1", "--dt", "0.05",
                              "--out", str(out)])
    assert args.func(args)["params"]["equation"] == "Eqn 62"
