"""Every shared metric of analysis.metrics against a closed form or a brute-force evaluation.

Tolerances: float64 round-off. A matrix product or eigendecomposition of an O(1)-normed d x d
matrix (d <= 12 here) carries a relative error of a few d * eps ~ 1e-14; RTOL = 1e-11 leaves a
factor ~100 for the condition of the eigenproblems used (eigenvalue gaps >= 0.1 here).
"""
import math

import numpy as np
import pytest

from analysis import metrics as M

RTOL = 1e-11


def _orthogonal(d, seed):
    Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def _spd_with(s, seed=0):
    U = _orthogonal(len(s), seed)
    return (U * np.asarray(s, float)) @ U.T, U


# ----------------------------------------------------------------- sym / antisym / spectrum
def test_sym_antisym_split_and_batch():
    A = np.random.default_rng(0).standard_normal((3, 5, 5))
    S, K = M.sym(A), M.antisym(A)
    np.testing.assert_allclose(S + K, A, rtol=0, atol=1e-15)       # exact split
    np.testing.assert_array_equal(S, np.swapaxes(S, -1, -2))
    np.testing.assert_array_equal(K, -np.swapaxes(K, -1, -2))
    np.testing.assert_allclose(S[1], (A[1] + A[1].T) / 2, atol=1e-15)


def test_eigh_desc_and_spectrum_reconstruct_a_known_spectrum():
    s_true = np.array([3.0, 2.0, 1.5, 0.7, 0.1, 0.0])
    F, _ = _spd_with(s_true, seed=1)
    s, U = M.eigh_desc(F)
    np.testing.assert_allclose(s, s_true, rtol=0, atol=RTOL)        # descending, as built
    np.testing.assert_allclose((U * s) @ U.T, F, atol=RTOL)
    np.testing.assert_allclose(U.T @ U, np.eye(6), atol=RTOL)
    np.testing.assert_allclose(M.spectrum(F), s_true, atol=RTOL)
    # only the symmetric part counts
    K = M.antisym(np.random.default_rng(2).standard_normal((6, 6)))
    np.testing.assert_allclose(M.spectrum(F + K), s_true, atol=RTOL)
    # batched
    np.testing.assert_allclose(M.spectrum(np.stack([F, 2 * F])), np.stack([s_true, 2 * s_true]),
                               atol=RTOL)


# ----------------------------------------------------------------- alignment
def test_alignment_of_a_predictor_sharing_the_eigenbasis_is_one():
    F, U = _spd_with([4.0, 3.0, 2.0, 1.0, 0.5], seed=3)
    Wp = (U * np.array([0.9, 0.1, 2.0, 0.3, 1e-3])) @ U.T           # same basis, p_j > 0
    np.testing.assert_allclose(M.alignment(F, Wp), 1.0, atol=RTOL)
    np.testing.assert_allclose(M.alignment(F, -np.eye(5)), -1.0, atol=RTOL)


def test_alignment_rotation_in_a_mode_plane_is_cos_theta():
    # Wp rotates the plane (u0, u1) by theta and fixes the rest: cos(Wp u0, u0) = cos(theta)
    F, U = _spd_with([4.0, 3.0, 2.0, 1.0], seed=4)
    th = 0.7
    R = np.eye(4)
    R[:2, :2] = [[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]]
    Wp = U @ R @ U.T
    np.testing.assert_allclose(M.alignment(F, Wp), [math.cos(th), math.cos(th), 1, 1], atol=RTOL)
    # a mode mapped exactly to 0 gives 0 (diagonal, so Wp u_1 is exactly zero, not round-off)
    assert M.alignment(np.diag([4.0, 3.0, 2.0, 1.0]), np.diag([1.0, 0.0, 1.0, 1.0]))[1] == 0.0


# ----------------------------------------------------------------- asymmetry / norms
def test_asymmetry_closed_forms_and_brute_force():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((6, 6))
    assert M.asymmetry(A + A.T) == pytest.approx(0.0, abs=1e-15)
    K = A - A.T
    assert M.asymmetry(K) == pytest.approx(2.0, rel=RTOL)          # ||K - K^T|| = 2 ||K||
    assert M.asymmetry(np.zeros((3, 3))) == 0.0
    brute = math.sqrt(sum((A[i, j] - A[j, i]) ** 2 for i in range(6) for j in range(6)))
    brute /= math.sqrt(float(np.sum(A * A)))
    assert M.asymmetry(A) == pytest.approx(brute, rel=RTOL)


def test_sym_antisym_norms_known_and_pythagoras():
    s, a = M.sym_antisym_norms(np.array([[0.0, 1.0], [0.0, 0.0]]))
    assert s == pytest.approx(math.sqrt(0.5), rel=RTOL) and a == pytest.approx(math.sqrt(0.5), rel=RTOL)
    A = np.random.default_rng(6).standard_normal((7, 7))
    s, a = M.sym_antisym_norms(A)
    assert s ** 2 + a ** 2 == pytest.approx(float(np.sum(A * A)), rel=RTOL)


# ----------------------------------------------------------------- commutators
def test_commutator_vanishes_for_commuting_matrices():
    F, U = _spd_with([3.0, 2.0, 1.0, 0.5], seed=7)
    G = F @ F - 2 * F + np.eye(4)                                    # a polynomial of F
    assert M.commutator_norm(F, G) == pytest.approx(0.0, abs=1e-12)
    assert M.relative_commutator_norm(F, G) == pytest.approx(0.0, abs=1e-12)


def test_commutator_known_pair_and_bounds():
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    Z = np.array([[1.0, 0.0], [0.0, -1.0]])
    np.testing.assert_array_equal(M.commutator(X, Z), [[0.0, -2.0], [2.0, 0.0]])  # by hand
    assert M.commutator_norm(X, Z) == pytest.approx(2 * math.sqrt(2), rel=RTOL)
    assert M.relative_commutator_norm(X, Z) == pytest.approx(math.sqrt(2), rel=RTOL)
    rng = np.random.default_rng(8)
    for _ in range(20):  # Boettcher-Wenzel: ||[A,B]||_F <= sqrt(2) ||A||_F ||B||_F
        A, B = rng.standard_normal((2, 5, 5))
        assert M.relative_commutator_norm(A, B) <= math.sqrt(2) + 1e-12
        np.testing.assert_allclose(M.commutator(A, B), -M.commutator(B, A), atol=1e-14)
    assert M.relative_commutator_norm(np.zeros((2, 2)), X) == 0.0


# ----------------------------------------------------------------- RankMe / participation ratio
def _rankme_closed_form(k, m):
    """k equal singular values among m = min(n, d): q = 1/k + 1e-7 (k times), 1e-7 (m - k)."""
    q1, q0 = 1.0 / k + 1e-7, 1e-7
    return math.exp(-(k * q1 * math.log(q1) + (m - k) * q0 * math.log(q0)))


@pytest.mark.parametrize("k", [1, 3, 8])
def test_rankme_of_k_orthogonal_equal_norm_vectors_is_k(k):
    n, d = 40, 12
    Q = _orthogonal(d, seed=10 + k)[:, :k]                           # k orthonormal directions
    coeff = _orthogonal(n, seed=20 + k)[:, :k]                       # orthonormal sample weights
    Z = 2.5 * coeff @ Q.T                                             # singular values all 2.5
    r = M.effective_rank(Z)
    assert r == pytest.approx(_rankme_closed_form(k, min(n, d)), rel=1e-9)
    # the 1e-7 terms move it from k by at most m * 1e-7 * (|log 1e-7| + 1) relative (~2e-5)
    assert abs(r - k) <= k * min(n, d) * 1e-7 * (abs(math.log(1e-7)) + 1)


def test_rankme_paths_and_edge_cases():
    Z = np.random.default_rng(9).standard_normal((30, 6))
    sv = np.linalg.svd(Z, compute_uv=False)
    assert M.effective_rank(Z) == pytest.approx(M.effective_rank(sv, from_singular_values=True),
                                                 rel=1e-14)
    q = sv / sv.sum() + 1e-7                                          # brute force of the formula
    assert M.effective_rank(Z) == pytest.approx(math.exp(-sum(x * math.log(x) for x in q)),
                                                 rel=1e-12)
    assert M.effective_rank(np.zeros((4, 3))) == 1.0
    with pytest.raises(ValueError, match="Z"):
        M.effective_rank(np.zeros(5))


def test_participation_ratio_closed_forms():
    d = 9
    assert M.participation_ratio(np.full(d, 0.3)) == pytest.approx(d, rel=RTOL)   # flat
    assert M.participation_ratio(np.r_[2.0, np.zeros(d - 1)]) == pytest.approx(1.0, rel=RTOL)
    assert M.participation_ratio(np.r_[np.ones(4), np.zeros(5)]) == pytest.approx(4.0, rel=RTOL)
    s = np.array([3.0, 1.0, 0.5])
    assert M.participation_ratio(s) == pytest.approx(4.5 ** 2 / (9 + 1 + 0.25), rel=RTOL)
    assert M.participation_ratio(np.array([1.0, -1.0])) == pytest.approx(1.0)      # clipped
    assert M.participation_ratio(np.zeros(3)) == 0.0
    np.testing.assert_allclose(M.participation_ratio(np.ones((2, 5))), [5.0, 5.0], rtol=RTOL)


# ----------------------------------------------------------------- collapsed modes
def test_collapsed_mask_and_count_follow_the_stated_rule():
    s = np.array([1.0, 2e-3, 1e-3, 5e-4, 0.0])
    np.testing.assert_array_equal(M.collapsed_mask(s), [False, False, True, True, True])
    assert M.n_collapsed_modes(s) == 3                                  # s_j <= 1e-3 s_max
    assert M.n_collapsed_modes(s, reference=100.0) == 4                 # against a healthy scale
    assert M.n_collapsed_modes(s, rel_tol=1e-2) == 4
    np.testing.assert_array_equal(M.n_collapsed_modes(np.stack([s, 10 * s])), [3, 3])
    # uniform shrink is invisible to the default (relative) reference
    assert M.n_collapsed_modes(1e-9 * np.ones(4)) == 0
    assert M.n_collapsed_modes(1e-9 * np.ones(4), reference=1.0) == 4


# ----------------------------------------------------------------- embeddings
def test_normalised_embedding_std_closed_forms():
    d = 7
    Z = np.concatenate([np.eye(d), -np.eye(d)]) * np.linspace(1, 5, 2 * d)[:, None]
    # per dimension: one +1, one -1, 2d-2 zeros after normalisation -> var 2/(2d), std 1/sqrt(d)
    assert M.normalised_embedding_std(Z) == pytest.approx(1 / math.sqrt(d), rel=RTOL)
    same = np.tile(np.array([[1.0, -2.0, 0.5]]), (10, 1)) * np.arange(1, 11)[:, None]
    assert M.normalised_embedding_std(same) == pytest.approx(0.0, abs=1e-15)


def test_matrix_correlation_closed_forms_and_brute_force():
    rng = np.random.default_rng(11)
    A, B = rng.standard_normal((2, 4, 6))
    assert M.matrix_correlation(A, 3 * A) == pytest.approx(1.0, rel=RTOL)
    assert M.matrix_correlation(A, -A) == pytest.approx(-1.0, rel=RTOL)
    E1, E2 = np.zeros((2, 2)), np.zeros((2, 2))
    E1[0, 0], E2[1, 1] = 1.0, 1.0
    assert M.matrix_correlation(E1, E2) == 0.0
    assert M.matrix_correlation(A, np.zeros_like(A)) == 0.0
    brute = sum(A[i, j] * B[i, j] for i in range(4) for j in range(6))
    brute /= math.sqrt(float(np.sum(A * A)) * float(np.sum(B * B)))
    assert M.matrix_correlation(A, B) == pytest.approx(brute, rel=RTOL)


def test_project_on_modes_is_the_diagonal_of_UtCU():
    rng = np.random.default_rng(12)
    C = rng.standard_normal((5, 5))
    U = _orthogonal(5, seed=13)
    brute = [float(U[:, j] @ C @ U[:, j]) for j in range(5)]
    np.testing.assert_allclose(M.project_on_modes(C, U), brute, rtol=RTOL)


def test_augmentation_sigma2_recovers_the_linear_model_per_mode():
    # C_same = W (X + X') W^T, C_cross = W X W^T with W aligned to the data axes (X = I,
    # X' = diag(sigma2)): along u_j the estimate is sigma2_j exactly.
    sigma2 = np.array([0.0, 0.3, 1.0, 4.0])
    U = _orthogonal(4, seed=14)
    w2 = np.array([2.0, 1.0, 0.5, 0.1])
    C_cross = (U * w2) @ U.T
    C_same = (U * (w2 * (1 + sigma2))) @ U.T
    est = M.augmentation_sigma2(M.project_on_modes(C_same, U), M.project_on_modes(C_cross, U))
    np.testing.assert_allclose(est, sigma2, rtol=0, atol=1e-12)
    # isotropic: any direction gives sigma2
    W = np.random.default_rng(15).standard_normal((4, 6))
    V = _orthogonal(4, seed=16)
    est = M.augmentation_sigma2(M.project_on_modes(1.25 * W @ W.T, V), M.project_on_modes(W @ W.T, V))
    np.testing.assert_allclose(est, 0.25, rtol=RTOL)
    assert np.isnan(M.augmentation_sigma2(np.array([1.0]), np.array([0.0]))[0])


def test_wang_isola_alignment_closed_forms():
    rng = np.random.default_rng(17)
    z = rng.standard_normal((50, 8))
    assert M.wang_isola_alignment(z, 3 * z) == pytest.approx(0.0, abs=1e-14)
    assert M.wang_isola_alignment(z, -z) == pytest.approx(4.0, rel=RTOL)
    th = 0.4                                                            # ||a - b||^2 = 2 - 2 cos
    a = np.array([[1.0, 0.0]])
    b = np.array([[math.cos(th), math.sin(th)]])
    assert M.wang_isola_alignment(a, 2 * b) == pytest.approx(2 - 2 * math.cos(th), rel=RTOL)
    with pytest.raises(ValueError, match="z1, z2"):
        M.wang_isola_alignment(z, z[:, :3])


def test_wang_isola_uniformity_closed_forms_and_brute_force():
    assert M.wang_isola_uniformity(np.tile([[1.0, 2.0]], (5, 1))) == pytest.approx(0.0, abs=1e-15)
    # two antipodal points: one pair at squared distance 4 -> log exp(-2 * 4) = -8
    assert M.wang_isola_uniformity(np.array([[1.0, 0.0], [-3.0, 0.0]])) == pytest.approx(-8.0, rel=RTOL)
    Z = np.random.default_rng(18).standard_normal((12, 4))
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    vals = [math.exp(-2 * float(np.sum((Zn[i] - Zn[j]) ** 2)))
            for i in range(12) for j in range(i + 1, 12)]
    assert M.wang_isola_uniformity(Z) == pytest.approx(math.log(sum(vals) / len(vals)), rel=1e-12)
    with pytest.raises(ValueError, match="Z"):
        M.wang_isola_uniformity(np.ones((1, 3)))


def test_bootstrap_of_sigma2_matches_the_spread_over_independent_probes():
    """The bootstrap over view pairs estimates the sampling spread of sigma2_j: compared with the
    spread over 200 independent probes of 4096 pairs (x ~ N(0, diag(a)), views x + N(0, diag(b))).
    Both spreads carry ~5-10 % noise (200 draws, 100 replicates); a bootstrap that forgot to
    resample, or resampled views independently, is off by far more than the 30 % allowed."""
    from analysis.metrics import augmentation_sigma2, bootstrap_mode_moments

    rng = np.random.default_rng(0)
    d, n = 4, 4096
    a = np.array([4.0, 2.0, 1.0, 0.5])
    b = np.array([0.2, 0.5, 1.0, 2.0])

    def probe():
        x = rng.normal(size=(n, d)) * np.sqrt(a)
        return x + rng.normal(size=(n, d)) * np.sqrt(b), x + rng.normal(size=(n, d)) * np.sqrt(b)

    U = np.eye(d)
    est = []
    for _ in range(200):
        z1, z2 = probe()
        est.append(augmentation_sigma2(((z1 ** 2 + z2 ** 2) / 2).mean(0), (z1 * z2).mean(0)))
    true_sd = np.std(est, axis=0)
    z1, z2 = probe()
    same, cross = bootstrap_mode_moments(z1, z2, U, n_boot=100, seed=1)
    boot_sd = np.std(augmentation_sigma2(same, cross), axis=0)
    assert np.allclose(np.mean(est, axis=0), b / a, rtol=0.05)
    assert np.all(np.abs(boot_sd / true_sd - 1) < 0.3), (boot_sd, true_sd)
