"""Predictors against brute-force float64 numpy computations (realnet/methods/predictors.py)."""
import dataclasses

import numpy as np
import pytest
import torch

from realnet.methods.predictors import (PREDICTORS, PredictorConfig, build_predictor,
                                        directset_spectrum, block_indices, hyperplane_sides,
                                        partitioned_predict, side_moments, predictor_param_groups)

U32 = float(np.finfo(np.float32).eps)  # 1.19e-7, unit roundoff of float32 is U32 / 2


def make_views(rng: np.random.Generator, steps: int, B: int, d: int, cond: float = 100.0) -> list[np.ndarray]:
    """`steps` float32 arrays (2, B, d) with correlation eigenvalues spread over [1/cond, 1]
    (uncentred: a non-zero mean is added, as projector outputs have one)."""
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.sqrt(np.geomspace(1.0, 1.0 / cond, d))
    mean = 0.3 * rng.standard_normal(d) * scales
    return [((rng.standard_normal((2, B, d)) * scales + mean) @ Q.T).astype(np.float32) for _ in range(steps)]


def ema_reference(batches: list[np.ndarray], rho: float, moment) -> np.ndarray:
    """Brute force: M_T = rho^(T-1) m_1 + sum_{t>=2} rho^(T-t) (1 - rho) m_t in float64."""
    T = len(batches)
    weights = [rho ** (T - 1)] + [rho ** (T - t) * (1 - rho) for t in range(2, T + 1)]
    return sum(w * moment(b.astype(np.float64)) for w, b in zip(weights, batches))


def second_moment(b: np.ndarray) -> np.ndarray:
    f = b.reshape(-1, b.shape[-1])
    return np.einsum("ni,nj->ij", f, f) / f.shape[0]


def np_directpred(F: np.ndarray, alpha=0.5, eps=0.1, floor=1e-4, cj=0.0) -> np.ndarray:
    s, U = np.linalg.eigh(F)
    r = np.maximum(s, 0) / max(np.maximum(s, 0).max(), np.finfo(np.float64).tiny)
    p = np.maximum(r - cj, floor) ** alpha if cj != 0 else np.maximum(r ** alpha + eps, floor)
    return (U * p) @ U.T


def feed(pred, batches, targets=None):
    for t, b in enumerate(batches):
        zt = torch.from_numpy(targets[t]) if targets is not None else torch.from_numpy(b)
        pred.observe(torch.from_numpy(b), zt)


def rel_err(A, B) -> float:
    return float(np.linalg.norm(np.asarray(A, np.float64) - B) / np.linalg.norm(B))


# --------------------------------------------------------------------------------------------
# running correlation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.0, 0.3, 0.9])
def test_running_correlation_matches_brute_force_ema(rho):
    rng = np.random.default_rng(0)
    batches = make_views(rng, steps=7, B=32, d=16)
    pred = build_predictor(PredictorConfig(name="directpred", rho=rho), 16)
    assert pred.correlation() is None
    feed(pred, batches)
    F = pred.correlation()
    assert F.dtype == torch.float32
    ref = ema_reference(batches, rho, second_moment)
    # Each float32 batch moment sums n = 2B = 64 products: norm-wise relative error <= gamma_n
    # ~ n * u = 64 * 6e-8 = 3.8e-6 in the worst case; the EMA is a convex combination and adds
    # O(u) per step. 1e-5 covers the worst case with margin; a wrong rho/weighting is O(1e-1).
    assert rel_err(F, ref) < 1e-5
    # the first batch initialises: with one batch F is its moment whatever rho
    one = build_predictor(PredictorConfig(name="directpred", rho=rho), 16)
    feed(one, batches[:1])
    assert rel_err(one.correlation(), second_moment(batches[0].astype(np.float64))) < 1e-5


def test_running_correlation_stays_float32_under_autocast():
    rng = np.random.default_rng(1)
    b = torch.from_numpy(make_views(rng, 1, 16, 8)[0])
    pred = build_predictor(PredictorConfig(), 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred.observe(b.bfloat16(), b.bfloat16())
        out = pred(b[0])
    assert pred.F.dtype == torch.float32 and out.shape == (16, 8)
    # bf16 inputs carry 8 mantissa bits (relative 2^-8 = 3.9e-3 per entry); the moment of the
    # rounded inputs is within ~2 * 3.9e-3 of the exact one, far from a bf16 accumulation error.
    assert rel_err(pred.F, second_moment(b.double().numpy())) < 1e-2


# --------------------------------------------------------------------------------------------
# DirectPred
# --------------------------------------------------------------------------------------------
def test_directset_spectrum_forms():
    s = torch.tensor([4.0, 1.0, 0.25, 0.0, -1e-3], dtype=torch.float64)
    r = np.array([1.0, 0.25, 0.0625, 0.0, 0.0])
    close = dict(rtol=1e-12, atol=1e-15)  # float64 arithmetic on exact binary fractions
    # DirectPred: sqrt(s / s_max) + eps, negatives clamped to 0 first
    np.testing.assert_allclose(directset_spectrum(s, alpha=0.5, eps=0.1), np.sqrt(r) + 0.1, **close)
    # eps = 0: the floor 1e-4 lifts the zero modes only
    np.testing.assert_allclose(directset_spectrum(s, alpha=0.5, eps=0.0, floor=1e-4),
                               np.maximum(np.sqrt(r), 1e-4), **close)
    # DirectSet(alpha=1): s / s_max + eps
    np.testing.assert_allclose(directset_spectrum(s, alpha=1.0, eps=0.05), r + 0.05, **close)
    # c_j ablation: sqrt(max(s/s_max - c_j, floor)), eps unused
    np.testing.assert_allclose(directset_spectrum(s, cj=0.1, eps=0.3, floor=1e-4),
                               np.sqrt(np.maximum(r - 0.1, 1e-4)), **close)
    np.testing.assert_allclose(directset_spectrum(s, cj=-0.1), np.sqrt(r + 0.1), **close)
    # all-zero spectrum: no division by zero
    np.testing.assert_allclose(directset_spectrum(torch.zeros(3), eps=0.1), [0.1] * 3, rtol=1e-7)


@pytest.mark.parametrize("kw", [dict(), dict(eps=0.0), dict(alpha=1.0, eps=0.01), dict(cj=0.05), dict(cj=-0.05)])
def test_directpred_set_weight_matches_numpy(kw):
    d = 16
    rng = np.random.default_rng(2)
    batches = make_views(rng, steps=4, B=64, d=d, cond=100.0)
    pred = build_predictor(PredictorConfig(name="directpred", rho=0.3, **kw), d)
    feed(pred, batches)
    pred.after_optimizer_step(1)
    F64 = pred.correlation().double().numpy()  # the same running F, in float64
    s = np.linalg.eigvalsh(F64)
    kappa = s.max() / s.min()
    assert s.min() > 0 and kappa < 400  # precondition of the tolerance below
    ref = np_directpred(F64, **kw)
    # float32 eigh: backward error ||dF|| <~ c d u ||F|| (u = 6e-8, d = 16: ~1e-6 ||F|| for
    # c ~ 1). Wp = f(F) with f(s) = (s/s_max)^alpha has Frechet derivative bounded by
    # max f' = alpha (s_min/s_max)^(alpha-1) / s_max <= 0.5 sqrt(kappa) / s_max <= 10 / s_max, so
    # ||dWp|| <~ 1e-5 relative to max p ~ 1. 5e-5 leaves 5x for the constant c (measured: 3e-7);
    # a wrong form (eps, alpha, c_j, normalisation) changes Wp by >= 1e-2.
    assert np.abs(pred.weight_matrix().double().numpy() - ref).max() < 5e-5
    # Wp is symmetric (float32 (U p) U^T: asymmetry ~ d u = 2e-6) with top eigenvalue
    # 1^alpha + eps, or (1 - c_j)^alpha in the c_j form (same eigh bound as above)
    W = pred.weight_matrix().double().numpy()
    assert np.abs(W - W.T).max() < 1e-5
    cfg = PredictorConfig(**kw)
    top = (1 - cfg.cj) ** cfg.alpha if cfg.cj else 1 + cfg.eps
    assert abs(np.linalg.eigvalsh((W + W.T) / 2).max() - top) < 5e-5


def test_directpred_freq_sets_on_schedule_and_sgd_moves_in_between():
    d, k, lr = 8, 3, 0.1
    rng = np.random.default_rng(3)
    batches = make_views(rng, steps=7, B=16, d=d)
    pred = build_predictor(PredictorConfig(name="directpred", freq=k), d)
    W0 = pred.weight_matrix()
    assert pred.linear.weight.requires_grad  # freq > 1: trained by SGD between settings
    opt = torch.optim.SGD(pred.parameters(), lr=lr)  # no momentum: the step is exactly -lr * grad
    for step, b in enumerate(batches, start=1):
        z = torch.from_numpy(b)
        pred.observe(z, z)
        before = pred.weight_matrix()
        opt.zero_grad()
        loss = (pred(z[0]) - z[1]).pow(2).sum(1).mean()
        loss.backward()
        grad = pred.linear.weight.grad.clone()
        opt.step()
        pred.after_optimizer_step(step)
        W = pred.weight_matrix()
        if step % k == 0:
            ref = np_directpred(pred.correlation().double().numpy())
            assert np.abs(W.double().numpy() - ref).max() < 5e-5  # as in the test above
        else:
            # the SGD step: torch computes w + (-lr) g with one rounding, this with two, so they
            # differ by <= 1 ulp of |w| <= 1 (6e-8); 2e-7 absolute allows 3 ulp.
            torch.testing.assert_close(W, before - lr * grad, rtol=0, atol=2e-7)
            assert (W - before).abs().max() > 1e-3  # the gradient did move it
            if step > k:  # in between, the weight is no longer the set (symmetric) one
                assert (W - W.T).abs().max() > 1e-4
    assert not torch.equal(W0, pred.weight_matrix())


def test_directpred_freq1_weight_is_not_trained_and_has_no_param_group():
    cfg = PredictorConfig(name="directpred", freq=1)
    pred = build_predictor(cfg, 8)
    assert not pred.linear.weight.requires_grad
    assert predictor_param_groups(pred, cfg, 0.03, 4e-4) == []


@pytest.mark.parametrize("reset", [False, True])
def test_momentum_buffer_kept_or_reset_at_setting(reset):
    d, lr, m = 8, 0.05, 0.9
    rng = np.random.default_rng(4)
    batches = make_views(rng, steps=3, B=16, d=d)
    cfg = PredictorConfig(name="directpred", freq=2, reset_momentum=reset)
    pred = build_predictor(cfg, d)
    opt = torch.optim.SGD(pred.parameters(), lr=lr, momentum=m)
    grads = []
    for step, b in enumerate(batches, start=1):
        z = torch.from_numpy(b)
        pred.observe(z, z)
        before = pred.weight_matrix()
        opt.zero_grad()
        (pred(z[0]) - z[1]).pow(2).sum(1).mean().backward()
        grads.append(pred.linear.weight.grad.clone())
        opt.step()
        pred.after_optimizer_step(step, opt)
    # step 3 follows the setting at step 2: buffer before it = g1 m + g2 (kept) or 0 (reset)
    buf_before = torch.zeros_like(grads[0]) if reset else m * grads[0] + grads[1]
    expected = before - lr * (m * buf_before + grads[2])
    # float32 arithmetic of the same few operations in a different order: a few ulp of |W| ~ 1
    torch.testing.assert_close(pred.weight_matrix(), expected, rtol=1e-6, atol=1e-6)


def test_reset_momentum_requires_the_optimizer():
    pred = build_predictor(PredictorConfig(name="directpred", freq=2, reset_momentum=True), 4)
    z = torch.randn(2, 8, 4)
    pred.observe(z, z)
    pred.after_optimizer_step(1)  # not a setting step: fine
    with pytest.raises(ValueError, match="optimizer"):
        pred.after_optimizer_step(2)


def test_setting_before_observe_is_an_error():
    pred = build_predictor(PredictorConfig(name="directpred"), 4)
    with pytest.raises(RuntimeError, match="observe"):
        pred.after_optimizer_step(1)
    with pytest.raises(ValueError, match="step"):
        pred.after_optimizer_step(0)


@pytest.mark.parametrize("d,k", [(12, 3), (12, 5)])
def test_feature_blocks_have_their_own_correlation(d, k):
    rng = np.random.default_rng(5)
    batches = make_views(rng, steps=3, B=64, d=d, cond=30.0)
    pred = build_predictor(PredictorConfig(name="directpred", feature_blocks=k, block_seed=7), d)
    feed(pred, batches)
    pred.after_optimizer_step(1)
    W = pred.weight_matrix().double().numpy()
    blocks = [b.numpy() for b in block_indices(d, k, 7)]
    # a partition: every index exactly once, sizes ceil/floor(d/k) with the larger ones first
    assert sorted(np.concatenate(blocks).tolist()) == list(range(d))
    sizes = [len(b) for b in blocks]
    assert sizes == [d // k + 1] * (d % k) + [d // k] * (k - d % k)
    mask = np.zeros((d, d), bool)
    for idx in blocks:
        mask[np.ix_(idx, idx)] = True
        F_b = ema_reference([b[..., idx] for b in batches], 0.3, second_moment)  # brute-force per-block F
        # float32 EMA (1e-5, see test_running_correlation...) then float32 eigh (5e-5, see
        # test_directpred_set_weight_matches_numpy; blocks are smaller and better conditioned)
        assert np.abs(W[np.ix_(idx, idx)] - np_directpred(F_b)).max() < 5e-5
        # each block is normalised by its own top eigenvalue: top p = 1 + eps
        assert abs(np.linalg.eigvalsh(W[np.ix_(idx, idx)]).max() - 1.1) < 5e-5
    assert np.all(W[~mask] == 0)  # exactly zero off the blocks
    # seeded: same seed same blocks, another seed other blocks
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(blocks, block_indices(d, k, 7)))
    assert not all(np.array_equal(a, b.numpy()) for a, b in zip(blocks, block_indices(d, k, 8)))


def _np_partitioned(batches, planes, rho, rule):
    """Brute force of the paper's partitioned predictor, one sample and one hyperplane at a time
    (float64): per step, each view's side of each hyperplane against that view's batch mean; each
    side's correlation averaged over its samples of both views, then the rho running average
    (first batch initialises, a side no sample reaches is left alone); weights by ``rule``; each
    sample's prediction the mean over hyperplanes of the weight of its side times ``f``."""
    d, k = planes.shape
    F = {(i, s): None for i in range(k) for s in (True, False)}
    preds = []
    for b in batches:
        sides = []
        for view in b:
            proj = view @ planes
            sides.append([[proj[n, i] >= proj[:, i].mean() for i in range(k)] for n in range(len(view))])
        for i in range(k):
            for s in (True, False):
                outer = [np.outer(view[n], view[n]) for v, view in enumerate(b)
                         for n in range(len(view)) if sides[v][n][i] == s]
                if not outer:
                    continue
                m = np.mean(outer, axis=0)
                F[i, s] = m if F[i, s] is None else rho * F[i, s] + (1 - rho) * m
        W = {key: rule(F[key] if F[key] is not None else np.zeros((d, d))) for key in F}
        preds.append(np.stack([np.stack([np.mean([W[i, sides[v][n][i]] @ view[n] for i in range(k)], axis=0)
                                         for n in range(len(view))]) for v, view in enumerate(b)]))
    return preds, F, W


@pytest.mark.parametrize("name,k", [("directpred", 1 + 2), ("directpred", 6), ("directcopy", 4)])
def test_partitioned_predictor_matches_brute_force(name, k):
    d, rho = 6, 0.3
    rng = np.random.default_rng(11)
    batches = [b.astype(np.float64) for b in make_views(rng, steps=4, B=12, d=d, cond=20.0)]
    pred = build_predictor(PredictorConfig(name=name, partitions=k, partition_seed=3, rho=rho), d).double()
    pred.train()
    planes = pred.planes.numpy()
    rule = np_directpred if name == "directpred" else (
        lambda F: F / max(np.linalg.norm(F, 2), np.finfo(np.float64).tiny) + 0.25 * np.eye(d))
    want, F_ref, W_ref = _np_partitioned(batches, planes, rho, rule)
    for b, w in zip(batches, want):
        z1, z2 = (torch.from_numpy(v).requires_grad_(True) for v in b)
        p1, p2 = pred.predict_views(z1, z2)
        # float64 against float64: eigh and sums in another order, 1e-10 is ~1e5 ulp of headroom
        np.testing.assert_allclose(p1.detach().numpy(), w[0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(p2.detach().numpy(), w[1], rtol=0, atol=1e-10)
    for i in range(k):
        np.testing.assert_allclose(pred.F_pos[i].numpy(), F_ref[i, True], atol=1e-12)
        np.testing.assert_allclose(pred.F_neg[i].numpy(), F_ref[i, False], atol=1e-12)
        np.testing.assert_allclose(pred.W_pos[i].numpy(), W_ref[i, True], atol=1e-10)
    # the gradient reaches f through the selected weights only: d p_b / d f_b = mean_i W_i(side)
    z = torch.from_numpy(batches[-1][0]).requires_grad_(True)
    r = torch.randn(z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pred.eval()
    (pred(z) * r).sum().backward()
    sides = hyperplane_sides(z.detach(), pred.planes)
    for n in range(len(z)):
        J = torch.stack([(pred.W_pos if sides[n, i] else pred.W_neg)[i] for i in range(k)]).mean(0)
        torch.testing.assert_close(z.grad[n], J.T @ r[n], rtol=0, atol=1e-12)
    assert pred.weight_matrix() is None and not list(pred.parameters())


def test_partition_pure_functions_split_and_average():
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], dtype=torch.float64)
    planes = torch.tensor([[1.0], [0.0]], dtype=torch.float64)       # <w, f> = 1, 0, 3; mean 4/3
    sides = hyperplane_sides(f, planes)
    assert sides[:, 0].tolist() == [False, False, True]
    m_pos, m_neg, n_pos, n_neg = side_moments(f, sides)
    assert n_pos.tolist() == [1.0] and n_neg.tolist() == [2.0]
    torch.testing.assert_close(m_pos[0], torch.tensor([[9.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(m_neg[0], torch.tensor([[0.5, 0.0], [0.0, 2.0]], dtype=torch.float64))
    W_pos = 2 * torch.eye(2, dtype=torch.float64)[None]
    W_neg = -torch.eye(2, dtype=torch.float64)[None]
    torch.testing.assert_close(partitioned_predict(f, sides, W_pos, W_neg),
                               torch.tensor([[-1.0, 0.0], [0.0, -2.0], [6.0, 0.0]], dtype=torch.float64))


def test_state_dict_round_trip_reproduces_the_set_weight():
    rng = np.random.default_rng(6)
    batches = make_views(rng, steps=3, B=16, d=8)
    a = build_predictor(PredictorConfig(name="directpred"), 8)
    feed(a, batches)
    b = build_predictor(PredictorConfig(name="directpred"), 8)
    b.load_state_dict(a.state_dict())
    a.after_optimizer_step(1)
    b.after_optimizer_step(1)
    assert torch.equal(a.weight_matrix(), b.weight_matrix())  # same input, same float32 ops


# --------------------------------------------------------------------------------------------
# DirectCopy, optimal
# --------------------------------------------------------------------------------------------
def test_directcopy_matches_normalised_F_plus_eps():
    d = 16
    rng = np.random.default_rng(7)
    batches = make_views(rng, steps=3, B=32, d=d)
    pred = build_predictor(PredictorConfig(name="directcopy", eps_copy=0.25, freq=1), d)
    feed(pred, batches)
    pred.after_optimizer_step(1)
    F64 = pred.correlation().double().numpy()
    ref = F64 / np.linalg.norm(F64, 2) + 0.25 * np.eye(d)
    # float32 division by a float32 spectral norm (svdvals relative error ~ d u = 2e-6): 1e-5.
    # A Frobenius instead of spectral norm would change F/||F|| by a factor of ~2 here.
    assert np.abs(pred.weight_matrix().double().numpy() - ref).max() < 1e-5
    assert abs(np.linalg.eigvalsh(pred.weight_matrix().double().numpy()).max() - 1.25) < 1e-5


@pytest.mark.parametrize("steps", [1, 4])
def test_optimal_matches_least_squares(steps):
    d, B, reg, rho = 8, 32, 0.05, 0.3
    rng = np.random.default_rng(8)
    online = make_views(rng, steps=steps, B=B, d=d, cond=20.0)
    # targets: a noisy linear map of the *same-view* online outputs (so the cross pairing matters)
    A = rng.standard_normal((d, d))
    target = [(o @ A.T + 0.1 * rng.standard_normal(o.shape)).astype(np.float32) for o in online]
    pred = build_predictor(PredictorConfig(name="optimal", rho=rho, optimal_reg=reg, optimal_every=1), d)
    feed(pred, online, target)
    pred.after_optimizer_step(1)
    # brute force: weighted ridge regression of z_target(other view) on f(online), rows of step t
    # weighted by its EMA weight w_t / (2B); solved as an augmented least-squares problem
    # min ||diag(sqrt(w)) (X Wp^T - Y)||^2 + reg ||Wp||^2.
    T = len(online)
    wts = [rho ** (T - 1)] + [rho ** (T - t) * (1 - rho) for t in range(2, T + 1)]
    X = np.concatenate([np.concatenate([o[0], o[1]]) for o in online]).astype(np.float64)
    Y = np.concatenate([np.concatenate([t[1], t[0]]) for t in target]).astype(np.float64)
    sw = np.sqrt(np.repeat(np.array(wts) / (2 * B), 2 * B))[:, None]
    Xa = np.vstack([sw * X, np.sqrt(reg) * np.eye(d)])
    Ya = np.vstack([sw * Y, np.zeros((d, d))])
    ref = np.linalg.lstsq(Xa, Ya, rcond=None)[0].T
    kappa = np.linalg.cond(Xa.T @ Xa)
    # C_ff, C_tf carry float32 relative errors <= gamma_n ~ 2B u = 3.8e-6 (then solved in
    # float64); the solution's relative error is <= kappa times that. Bound: 2 * kappa * 3.8e-6.
    tol = 2 * kappa * 64 * U32 / 2
    assert rel_err(pred.weight_matrix(), ref) < max(tol, 1e-6)
    # the pairing is (online 1, target 2), (online 2, target 1): the same-view pairing differs
    Y_same = np.concatenate([np.concatenate([t[0], t[1]]) for t in target]).astype(np.float64)
    ref_same = np.linalg.lstsq(Xa, np.vstack([sw * Y_same, np.zeros((d, d))]), rcond=None)[0].T
    assert rel_err(pred.weight_matrix(), ref_same) > 0.1


# --------------------------------------------------------------------------------------------
# learned and identity predictors
# --------------------------------------------------------------------------------------------
def test_linear_symmetrize_gives_symmetric_weight_after_a_step():
    d = 8
    torch.manual_seed(0)
    cfg = PredictorConfig(name="linear", symmetrize=True)
    pred = build_predictor(cfg, d)
    assert pred.linear.bias is None
    W0 = pred.weight_matrix()
    assert torch.equal(W0, W0.T)  # starts symmetric
    opt = torch.optim.SGD(pred.parameters(), lr=0.1, momentum=0.9)
    z = torch.randn(2, 16, d)
    A = torch.randn(d, d)  # asymmetric target map, so the gradient is asymmetric
    for step in (1, 2):
        opt.zero_grad()
        (pred(z[0]) - z[1] @ A.T).pow(2).sum(1).mean().backward()
        opt.step()
        raw = pred.weight_matrix()
        assert (raw - raw.T).abs().max() > 1e-3  # SGD made it asymmetric
        pred.after_optimizer_step(step)
        W = pred.weight_matrix()
        assert torch.equal(W, W.T)  # (a + b)/2 == (b + a)/2 exactly in IEEE arithmetic
        torch.testing.assert_close(W, (raw + raw.T) / 2, rtol=0, atol=0)
    # without symmetrize the weight stays as SGD leaves it
    plain = build_predictor(PredictorConfig(name="linear", bias=True), d)
    assert plain.linear.bias is not None
    before = plain.weight_matrix()
    plain.after_optimizer_step(1)
    assert torch.equal(before, plain.weight_matrix())


def test_mlp_shape_no_affine_bn_and_no_weight_matrix():
    cfg = PredictorConfig(name="mlp", hidden_dim=32)
    pred = build_predictor(cfg, 8)
    out = pred(torch.randn(10, 8))
    assert out.shape == (10, 8)
    bns = [m for m in pred.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 1 and not bns[0].affine and bns[0].weight is None
    linears = [m for m in pred.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 32), (32, 8)]
    assert pred.weight_matrix() is None
    groups = predictor_param_groups(pred, dataclasses.replace(cfg, lr_ratio=10.0, weight_decay=0.0), 0.03, 4e-4)
    assert len(groups) == 1 and groups[0]["lr"] == pytest.approx(0.3) and groups[0]["weight_decay"] == 0.0
    assert sum(p.numel() for p in groups[0]["params"]) == 8 * 32 + 32 + 32 * 8 + 8


def test_identity_predictor():
    pred = build_predictor(PredictorConfig(name="identity"), 6)
    z = torch.randn(5, 6)
    assert torch.equal(pred(z), z)
    assert list(pred.parameters()) == []
    assert torch.equal(pred.weight_matrix(), torch.eye(6))
    assert predictor_param_groups(pred, PredictorConfig(name="identity"), 0.03, 4e-4) == []


def test_param_groups_lr_ratio_and_global_weight_decay():
    cfg = PredictorConfig(name="linear", lr_ratio=2.0)
    pred = build_predictor(cfg, 4)
    (g,) = predictor_param_groups(pred, cfg, 0.03, 4e-4)
    assert g["lr"] == pytest.approx(0.06) and g["weight_decay"] == 4e-4
    assert g["params"] == [pred.linear.weight]


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key,value", [
    ("rho", 1.0), ("rho", -0.1), ("eps", -1e-3), ("floor", 0.0), ("freq", 0), ("freq", 1.5),
    ("alpha", 0.0), ("cj", 1.0), ("partitions", 0), ("eps_copy", -0.1), ("optimal_every", 0),
    ("optimal_reg", -1.0), ("lr_ratio", 0.0), ("lr_ratio", float("nan")), ("weight_decay", -1e-4),
    ("hidden_dim", 0), ("symmetrize", 1), ("partition_seed", -1), ("feature_blocks", 0),
    ("block_seed", -1),
])
def test_config_rejects_bad_values_naming_the_key(key, value):
    cfg = dataclasses.replace(PredictorConfig(), **{key: value})
    with pytest.raises(ValueError, match=rf"predictor\.{key}"):
        cfg.validate()


def test_config_unknown_name_lists_the_registry():
    with pytest.raises(ValueError, match="predictor.name") as err:
        PredictorConfig(name="nope").validate()
    assert all(k in str(err.value) for k in PREDICTORS)


@pytest.mark.parametrize("name,key,value", [
    ("mlp", "symmetrize", True), ("directpred", "bias", True), ("linear", "cj", 0.1),
    ("directcopy", "alpha", 1.0), ("linear", "partitions", 2), ("linear", "reset_momentum", True),
    ("mlp", "feature_blocks", 2),
])
def test_config_rejects_knobs_of_another_predictor(name, key, value):
    cfg = dataclasses.replace(PredictorConfig(name=name), **{key: value})
    with pytest.raises(ValueError, match=rf"predictor\.{key}"):
        cfg.validate()


def test_feature_blocks_larger_than_dim_and_defaults_valid():
    for name in PREDICTORS:
        PredictorConfig(name=name).validate()
    with pytest.raises(ValueError, match="predictor.feature_blocks"):
        build_predictor(PredictorConfig(feature_blocks=9), 8)
    # partitions (hyperplanes) are not bounded by d, but exclude feature blocks and freq > 1
    build_predictor(PredictorConfig(partitions=9), 8)
    with pytest.raises(ValueError, match="predictor.feature_blocks"):
        PredictorConfig(partitions=2, feature_blocks=2).validate()
    with pytest.raises(ValueError, match="predictor.freq"):
        PredictorConfig(partitions=2, freq=2).validate()
    with pytest.raises(ValueError, match="z_online"):
        build_predictor(PredictorConfig(), 8).observe(torch.randn(3, 4, 8), torch.randn(3, 4, 8))


@pytest.mark.gpu
@pytest.mark.parametrize("name,kw", [("directpred", dict(feature_blocks=4)), ("directcopy", {}), ("optimal", {})])
def test_set_predictors_on_cuda_under_bf16_autocast_match_cpu(name, kw):
    d = 16
    rng = np.random.default_rng(9)
    batches = make_views(rng, steps=3, B=64, d=d, cond=30.0)
    cfg = PredictorConfig(name=name, **kw)
    cpu, gpu = build_predictor(cfg, d), build_predictor(cfg, d).cuda()
    feed(cpu, batches)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        for b in batches:
            z = torch.from_numpy(b).cuda()
            gpu.observe(z, z)  # float32 inputs: autocast must not touch the moment
            assert gpu(z[0]).dtype == torch.bfloat16
        gpu.after_optimizer_step(1)
    cpu.after_optimizer_step(1)
    assert gpu.F.dtype == torch.float32
    # both float32: F agrees to the float32 moment error (1e-5, see test_running_correlation...)
    assert rel_err(gpu.correlation().cpu(), cpu.correlation().double().numpy()) < 1e-5
    # Wp: eigh bound of test_directpred_set_weight_matches_numpy (5e-5); for the optimal
    # predictor the moments' float32 errors (gamma_2B ~ 3.8e-6 each side) times the condition
    # number of C_ff + reg I, as in test_optimal_matches_least_squares
    C = cpu.correlation().double().numpy() + cfg.optimal_reg * np.eye(d)
    tol = 5e-5 if name != "optimal" else 2 * 2 * np.linalg.cond(C) * 64 * U32 / 2
    assert rel_err(gpu.weight_matrix().cpu(), cpu.weight_matrix().double().numpy()) < tol


def test_the_partition_hyperplanes_come_from_the_runs_seed():
    """Unset, ``predictor.partition_seed`` draws the hyperplanes from the run's random state (the
    paper's code), so the seeds of a sweep do not share one set; a fixed seed pins them."""
    from realnet.config.train_config import load_config
    from realnet.data.datasets import dataset_spec
    from realnet.nets.ssl_model import build_ssl_model

    def planes(*over):
        cfg = load_config("digits", ["predictor.partitions=3", *over])
        return build_ssl_model(cfg, dataset_spec("digits")).predictor.planes

    assert torch.equal(planes("seed=0"), planes("seed=0"))
    assert not torch.equal(planes("seed=0"), planes("seed=1"))
    assert torch.equal(planes("seed=0", "predictor.partition_seed=7"),
                       planes("seed=1", "predictor.partition_seed=7"))
