"""Spectra snapshots: contents against hand computations, augmentation strength per mode, files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analysis import metrics
from realnet.eval import spectra


def _views(rng, n=64, d=5, feat=7):
    return spectra.ProbeViews(rng.normal(size=(n, d)), rng.normal(size=(n, d)),
                              rng.normal(size=(n, feat)))


def test_snapshot_matches_hand_computation():
    rng = np.random.default_rng(0)
    v = _views(rng)
    A = rng.normal(size=(5, 5))
    F = A @ A.T + np.eye(5)
    Wp = rng.normal(size=(5, 5))
    snap = spectra.snapshot(40, v, F=F, Wp=Wp)

    # By hand: correlations as explicit sums over samples (float64 throughout, so 1e-12).
    n = len(v.z1)
    same = sum(np.outer(a, a) + np.outer(b, b) for a, b in zip(v.z1, v.z2)) / (2 * n)
    cross = sum(np.outer(a, b) + np.outer(b, a) for a, b in zip(v.z1, v.z2)) / (2 * n)
    np.testing.assert_allclose(snap["C_same"], same, atol=1e-12)
    np.testing.assert_allclose(snap["C_cross"], cross, atol=1e-12)

    s, U = np.linalg.eigh(F)
    s, U = s[::-1], U[:, ::-1]
    np.testing.assert_allclose(snap["F_eigvals"], s, rtol=1e-12)
    np.testing.assert_allclose(snap["same_on_F"], [U[:, j] @ same @ U[:, j] for j in range(5)],
                               atol=1e-12)
    cos = [(Wp @ U[:, j]) @ U[:, j] / np.linalg.norm(Wp @ U[:, j]) for j in range(5)]
    np.testing.assert_allclose(snap["alignment"], cos, atol=1e-12)
    np.testing.assert_allclose(snap["Wp_sym_eigvals"],
                               np.sort(np.linalg.eigvalsh((Wp + Wp.T) / 2))[::-1], atol=1e-12)
    assert snap["asymmetry"] == pytest.approx(np.linalg.norm(Wp - Wp.T) / np.linalg.norm(Wp),
                                              rel=1e-12)
    comm = np.linalg.norm(F @ Wp - Wp @ F) / (np.linalg.norm(F) * np.linalg.norm(Wp))
    assert snap["relative_commutator"] == pytest.approx(comm, rel=1e-12)
    Z = np.concatenate([v.z1, v.z2])
    sv = np.linalg.svd(Z, compute_uv=False)
    q = sv / sv.sum() + 1e-7
    assert snap["effective_rank"] == pytest.approx(np.exp(-(q * np.log(q)).sum()), rel=1e-12)
    assert snap["effective_rank_trunk"] == pytest.approx(metrics.effective_rank(v.h1), rel=1e-12)
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    assert snap["normalised_std"] == pytest.approx(Zn.std(axis=0).mean(), rel=1e-12)
    assert snap["F_source"] == "predictor" and snap["step"] == 40


def test_without_a_running_F_the_probe_correlation_is_used():
    rng = np.random.default_rng(1)
    v = _views(rng)
    snap = spectra.snapshot(0, v)
    assert snap["F_source"] == "probe"
    np.testing.assert_allclose(snap["F"], snap["C_same"], atol=0)
    assert "Wp" not in snap and "alignment" not in snap
    slim = spectra.snapshot(0, v, save_matrices=False)
    assert "F" not in slim and "C_same" not in slim and "F_eigvals" in slim


def test_same_minus_cross_view_recovers_the_augmentation_variance_per_mode():
    # Linear model of section 1 with W = I: views f = x + e, x ~ N(0, diag(X)) shared, e ~ N(0,
    # diag(X')) independent per view. Then E[C_same - C_cross] = diag(X') along each eigenvector
    # of F. Per mode the estimate is the mean of (e1 - e2)^2 / 2, whose std is X'_j sqrt(2/n):
    # at n = 20000 that is 1 % of X'_j; 5 % is 5 standard errors. (The sample eigenvectors of F
    # differ from the axes by O(n^-1/2), which moves a diagonal projection only at second order.)
    rng = np.random.default_rng(2)
    n, X, Xa = 20000, np.array([4.0, 3.0, 2.0, 1.0]), np.array([0.5, 0.4, 0.3, 0.2])
    x = rng.normal(size=(n, 4)) * np.sqrt(X)
    z1 = x + rng.normal(size=(n, 4)) * np.sqrt(Xa)
    z2 = x + rng.normal(size=(n, 4)) * np.sqrt(Xa)
    snap = spectra.snapshot(0, spectra.ProbeViews(z1, z2, z1))
    np.testing.assert_allclose(snap["same_on_F"] - snap["cross_on_F"], Xa, rtol=0.05)
    np.testing.assert_allclose(snap["cross_on_F"], X, rtol=0.05)  # shared signal, same argument


def test_write_and_read_back(tmp_path):
    rng = np.random.default_rng(3)
    snap = spectra.snapshot(500, _views(rng), F=np.eye(5), Wp=2 * np.eye(5))
    line = spectra.write_snapshot(tmp_path, snap)
    path = spectra.snapshot_path(tmp_path, 500)
    assert path.name == "step_0000500.npz"
    back = spectra.read_snapshot(path)
    assert back["step"] == 500 and back["F_source"] == "predictor"
    np.testing.assert_array_equal(back["alignment"], snap["alignment"])
    logged = json.loads((tmp_path / "spectra.jsonl").read_text().splitlines()[-1])
    assert logged == json.loads(json.dumps(line))
    assert logged["alignment_mean"] == pytest.approx(1.0) and logged["asymmetry"] == 0.0


def test_probe_views_leave_the_networks_untouched():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    projector = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    before = {k: v.clone() for k, v in {**backbone.state_dict(), **projector.state_dict()}.items()}
    images = torch.randint(0, 255, (20, 1, 8, 8), dtype=torch.uint8)

    def augment(x, g):  # brightness noise from the given generator
        return x.float() / 255 + torch.rand(len(x), 1, 1, 1, generator=g)

    a = spectra.probe_views(backbone, projector, images, augment, seed=7, batch_size=8)
    b = spectra.probe_views(backbone, projector, images, augment, seed=7, batch_size=8)
    assert backbone.training and projector.training  # modes restored
    after = {**backbone.state_dict(), **projector.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched
    np.testing.assert_array_equal(a.z1, b.z1)  # same seed, same views
    assert not np.allclose(a.z1, a.z2)  # the two views differ
    assert a.z1.shape == (20, 3) and a.h1.shape == (20, 4) and a.z1.dtype == np.float64
