"""Minibatch SGD of the linear network: hand-derived gradients against finite differences, SGD
against the matrix ODE (Euler error + SDE noise), EMA alignment (A1), DirectPred, input checks,
CLI."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from dynamics.matrix import integrate_matrix
from dynamics.cli import register_sgd as register
from dynamics.sgd import (DirectPredConfig, directpred_wp, minibatch_gradients, minibatch_loss,
                          simulate_sgd)

N1, N2 = 6, 5


def _data(seed: int = 1):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((N1, N1))
    B = rng.standard_normal((N1, N1))
    return A @ A.T / N1, 0.3 * B @ B.T / N1


def _init(seed: int = 2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N2, N1)) / np.sqrt(N1), rng.standard_normal((N2, N2)) / np.sqrt(N2)


def _state(traj) -> np.ndarray:
    """(T, d): W, Wp, Wa flattened (Wa only for an EMA target)."""
    T = len(traj.t)
    parts = [traj.W.reshape(T, -1), traj.Wp.reshape(T, -1)]
    if traj.params["beta"] is not None:
        parts.append(traj.Wa.reshape(T, -1))
    return np.concatenate(parts, axis=1)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("stop_grad", [True, False])
def test_minibatch_gradient_matches_central_differences(stop_grad):
    """Central differences have error h^2 f'''/6 + eps_mach f / h; with h = 1e-5 on an O(1)
    quartic loss that is ~1e-10 relative, far below the 1e-6 asked."""
    rng = np.random.default_rng(0)
    W, Wp, Wa = (rng.standard_normal(s) for s in ((N2, N1), (N2, N2), (N2, N1)))
    x1, x2 = rng.standard_normal((7, N1)), rng.standard_normal((7, N1))

    def loss(W_, Wp_):
        return minibatch_loss(W_, Wp_, Wa if stop_grad else W_, x1, x2)

    gW, gWp = minibatch_gradients(W, Wp, Wa if stop_grad else W, x1, x2, stop_grad=stop_grad)
    h = 1e-5
    for g, which in ((gW, 0), (gWp, 1)):
        fd = np.zeros_like(g)
        for idx in np.ndindex(g.shape):
            args_p, args_m = [W.copy(), Wp.copy()], [W.copy(), Wp.copy()]
            args_p[which][idx] += h
            args_m[which][idx] -= h
            fd[idx] = (loss(*args_p) - loss(*args_m)) / (2 * h)
        assert np.linalg.norm(fd - g) / np.linalg.norm(g) < 1e-6


# --------------------------------------------------------------------------- SGD vs ODE


def _seeds(n_seeds, batch, **kw):
    return np.stack([_state(simulate_sgd(seed=s, batch=batch, **kw)) for s in range(n_seeds)])


def test_sgd_follows_matrix_ode():
    """SGD as an SDE: theta_{k+1} = theta_k + lr [f(theta_k) + xi_k] with E xi = 0 and
    Cov xi = Sigma_g / B. Its expected step is exactly one Euler step of the ODE with dt = lr
    (all updates from pre-step weights), so theta_k = theta_Euler(k lr) + delta_k where delta has
    mean O(lr * Var) (curvature of f) and covariance ~ (lr/B) int Sigma_g (std O(sqrt(lr t/B))
    before the flow's contraction saturates it). The Euler path itself is O(lr t) from the exact
    flow. Checks, with K = 16 seeds:
    (a) the seed-mean of delta is within 4 standard errors, ||mean delta|| <= 4 sqrt(tr Cov/K),
        at every saved time (a biased update -- wrong factor in a gradient, alpha_p, eta or the
        EMA -- shifts the mean by O(1) * t, here >> 4 SE ~ 0.01);
    (b) the noise scales as sqrt(lr/B): quadrupling B halves its std (ratio 2; accepted
        [1.4, 2.8], since a std from 16 seeds over ~d_eff >= 3 directions is uncertain to
        ~ 1/sqrt(2*15*3) ~ 10%, i.e. the band is > 3 sigma);
    (c) each run stays within the Euler error plus 4 noise std of the exact (RK4) flow, and the
        Euler error is first order in lr (halving lr halves it: ratio in [1.6, 2.4])."""
    X, Xp = _data()
    W0, Wp0 = _init()
    lr, K = 0.01, 16
    kw = dict(X=X, Xp=Xp, alpha_p=1.5, eta=0.05, beta=1.0, t_end=3.0, n_save=31)
    euler = _state(integrate_matrix(W0, Wp0, solver="euler", dt=lr, **kw))
    euler_half = _state(integrate_matrix(W0, Wp0, solver="euler", dt=lr / 2, **kw))
    exact = _state(integrate_matrix(W0, Wp0, solver="rk4", dt=lr / 2, **kw))
    std = {}
    for B in (256, 1024):
        delta = _seeds(K, B, W0=W0, Wp0=Wp0, lr=lr, **kw) - euler          # (K, T, d)
        var = delta.var(axis=0, ddof=1).sum(axis=1)                          # tr Cov, per time
        mean_norm = np.linalg.norm(delta.mean(axis=0), axis=1)
        assert np.all(mean_norm[1:] <= 4 * np.sqrt(var[1:] / K))            # (a)
        std[B] = np.sqrt(var[1:].mean())
        if B == 256:
            e_euler = np.linalg.norm(euler - exact, axis=1)
            dev = np.linalg.norm(delta + euler - exact, axis=2)              # (K, T)
            assert np.all(dev <= e_euler + 4 * np.sqrt(var))                  # (c)
    assert 1.4 <= std[256] / std[1024] <= 2.8                                # (b)
    e_half = np.linalg.norm(euler_half - exact, axis=1)
    ratio = np.linalg.norm(euler - exact, axis=1)[-1] / e_half[-1]
    assert 1.6 <= ratio <= 2.4


@pytest.mark.parametrize("variant", [
    dict(stop_grad=False),
    dict(predictor=False),
    dict(beta=1.0, symmetric_wp=True),
], ids=["no-stop-grad", "no-predictor", "BYOL-symmetric-Wp"])
def test_sgd_variants_have_the_ode_mean(variant):
    """Check (a) of test_sgd_follows_matrix_ode for the other variants of the update: the
    seed-mean deviation from the Euler ODE stays within 4 standard errors (K = 8, B = 512)."""
    X, Xp = _data()
    W0, Wp0 = _init()
    if variant.get("symmetric_wp"):
        Wp0 = 0.5 * (Wp0 + Wp0.T)
    if variant.get("predictor") is False:
        Wp0 = None
    kw = dict(X=X, Xp=Xp, alpha_p=1.5, eta=0.05, t_end=2.0, n_save=11, **variant)
    euler = _state(integrate_matrix(W0, Wp0, solver="euler", dt=0.01, **kw))
    delta = _seeds(8, 512, W0=W0, Wp0=Wp0, lr=0.01, **kw) - euler
    var = delta.var(axis=0, ddof=1).sum(axis=1)
    mean_norm = np.linalg.norm(delta.mean(axis=0), axis=1)
    assert np.all(mean_norm[1:] <= 4 * np.sqrt(var[1:] / 8))
    assert np.all(var[1:] > 0)                                              # there is noise


def test_ema_target_aligns_with_W():
    """A1: with Wa(0) = 0 the target starts uncorrelated (corr = 0) and aligns with W. Bound:
    e = Wa - W obeys de/dt = -beta e - dW/dt, so on [t1, t], ||e(t)|| <= exp(-beta (t-t1))
    ||e(t1)|| + max ||dW/dt|| / beta, and 1 - corr(Wa, W) <= (||e|| / ||W||)^2 when
    ||e|| < ||W|| (the angle's sine is at most ||e||/||W||). Evaluated on the exact flow this
    bound is 0.007 at t_end = 6 (beta = 1), which the ODE must satisfy; SGD noise moves W and Wa
    by ~ sqrt(lr/B) ~ 0.01 << ||e|| ~ 0.1 in norm, so 1 - corr <= 0.01 for SGD too."""
    X, Xp = _data()
    W0, Wp0 = _init()
    beta, t_end = 1.0, 6.0
    kw = dict(X=X, Xp=Xp, alpha_p=1.5, eta=0.05, beta=beta, Wa0=np.zeros_like(W0), t_end=t_end)
    ode = integrate_matrix(W0, Wp0, dt=0.01, n_save=601, **kw)
    dW = np.linalg.norm(np.gradient(ode.W, ode.t, axis=0), axis=(1, 2))
    half = len(ode.t) // 2
    e_bound = (np.exp(-beta * (t_end - ode.t[half])) * np.linalg.norm(ode.Wa[half] - ode.W[half])
               + dW[half:].max() / beta)
    bound = (e_bound / np.linalg.norm(ode.W[-1])) ** 2
    assert bound < 0.01
    assert 1 - ode.obs.wa_correlation[-1] <= bound
    sgd = simulate_sgd(W0, Wp0, lr=0.01, batch=256, n_save=13, seed=0, **kw)
    assert sgd.obs.wa_correlation[0] == 0.0
    assert 1 - sgd.obs.wa_correlation[-1] <= 0.01
    assert sgd.params["gamma_a"] == pytest.approx(1 - 0.01 * beta)


# --------------------------------------------------------------------------- DirectPred


def test_directpred_wp_formula():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 5))
    F = A @ A.T - 0.5 * np.outer(A[0], A[0])          # one eigenvalue may be negative
    cfg = DirectPredConfig(eps=0.1)
    s, U = np.linalg.eigh(F)
    Wp = directpred_wp(F, cfg)
    expected = np.maximum(np.sqrt(np.clip(s, 0, None) / s.max()) + 0.1, 1e-4)
    np.testing.assert_allclose(Wp @ U, U * expected, atol=1e-12)       # Wp u_j = p_j u_j
    assert np.linalg.eigvalsh(Wp).max() == pytest.approx(1.1, abs=1e-12)
    floor_only = directpred_wp(-np.eye(3), DirectPredConfig(eps=0.0))   # no positive mode
    np.testing.assert_allclose(floor_only, 1e-4 * np.eye(3), atol=1e-18)


def test_sgd_with_directpred():
    """freq = 1: after every step Wp = DirectPred(F_hat), so at saved points Wp is symmetric with
    top eigenvalue 1 + eps, and close to the rule applied to the population correlation of the
    outputs of both views, W (X + X') W^T: F_hat averages ~ (1+rho)/(1-rho) ~ 1.9 batches of 2B
    = 1024 outputs, a relative sampling error ~ sqrt(2 / 1950) ~ 0.03 (Wishart), which the square
    root halves on the large modes; accepted: 0.1 relative (measured 0.02).
    freq = 3 with saves every 10 steps: between settings Wp trains by plain SGD, so it is no
    longer exactly symmetric at the saved points."""
    X, Xp = _data()
    W0, Wp0 = _init()
    cfg = DirectPredConfig(freq=1, rho=0.3, eps=0.1)
    kw = dict(X=X, Xp=Xp, beta=1.0, lr=0.01, t_end=1.0, n_save=11, seed=0)
    traj = simulate_sgd(W0, Wp0, batch=512, directpred=cfg, **kw)
    assert traj.obs.wp_antisym_norm[1:].max() < 1e-14
    np.testing.assert_allclose(traj.obs.p[1:, 0], 1.1, atol=1e-12)
    W = traj.W[-1]
    Wp_pop = directpred_wp(W @ (X + Xp) @ W.T, cfg)
    assert np.linalg.norm(traj.Wp[-1] - Wp_pop) <= 0.1 * np.linalg.norm(Wp_pop)
    assert traj.params["directpred"]["freq"] == 1
    every3 = simulate_sgd(W0, Wp0, batch=64, directpred=DirectPredConfig(freq=3), **kw)
    assert every3.obs.wp_antisym_norm[1:].max() > 1e-6


# --------------------------------------------------------------------------- API


def test_seeded_and_on_the_ode_time_grid():
    X, Xp = _data()
    W0, Wp0 = _init()
    kw = dict(X=X, Xp=Xp, lr=0.02, batch=8, t_end=1.0, n_save=7)
    a = simulate_sgd(W0, Wp0, seed=5, **kw)
    b = simulate_sgd(W0, Wp0, seed=5, **kw)
    c = simulate_sgd(W0, Wp0, seed=6, **kw)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    ode = integrate_matrix(W0, Wp0, X=X, Xp=Xp, solver="euler", dt=0.02, t_end=1.0, n_save=7)
    np.testing.assert_array_equal(a.t, ode.t)


@pytest.mark.parametrize("change, name", [
    ({"lr": 0.0}, "lr"),
    ({"lr": -0.1}, "lr"),
    ({"batch": 0}, "batch"),
    ({"batch": 2.5}, "batch"),
    ({"beta": 200.0}, "beta"),                        # lr * beta > 1
    ({"beta": -1.0}, "beta"),
    ({"alpha_p": 0.0}, "alpha_p"),
    ({"eta": -0.5}, "eta"),
    ({"X": np.diag([1.0, -1.0])}, "X"),
    ({"Xp": np.array([[1.0, 0.2], [0.0, 1.0]])}, "Xp"),
    ({"W0": np.ones((3, 4))}, "W0"),
    ({"predictor": False, "directpred": DirectPredConfig()}, "directpred"),
    ({"t_end": 0.015}, "t_end"),                      # not a multiple of lr
])
def test_bad_input_names_the_argument(change, name):
    kw = dict(W0=np.ones((3, 2)), Wp0=np.eye(3), X=np.eye(2), Xp=0.1 * np.eye(2), lr=0.01,
              batch=4, t_end=0.1)
    kw.update(change)
    W0, Wp0 = kw.pop("W0"), kw.pop("Wp0")
    with pytest.raises(ValueError, match=rf"^{name}:"):
        simulate_sgd(W0, Wp0, **kw)


@pytest.mark.parametrize("change, name", [
    ({"freq": 0}, "freq"), ({"freq": 1.5}, "freq"), ({"rho": 1.0}, "rho"), ({"rho": -0.1}, "rho"),
    ({"eps": -0.1}, "eps"), ({"floor": 0.0}, "floor"), ({"alpha": 0.0}, "alpha"),
])
def test_bad_directpred_config(change, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        DirectPredConfig(**change)


def test_cli_sgd(tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    out = tmp_path / "s"
    args = parser.parse_args(["sgd", "--n1", "4", "--n2", "3", "--beta", "1", "--lr", "0.05",
                              "--batch", "16", "--t-end", "0.5", "--n-save", "6",
                              "--directpred-freq", "2", "--seed", "1", "--out", str(out)])
    summary = args.func(args)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["params"]["batch"] == 16 and on_disk["params"]["directpred"]["freq"] == 2
    assert on_disk["n_saved"] == 6 and len(on_disk["final"]["p"]) == 3
    # saved at step 10 (t = 0.5), a multiple of freq = 2: Wp was just set, top p = 1 + eps
    assert on_disk["final"]["p"][0] == pytest.approx(1.1, abs=1e-12)
    assert np.load(out / "trajectory.npz")["W"].shape == (6, 3, 4)
