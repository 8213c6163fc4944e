import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from realnet.data.augment import GPUAugment, default_augment
from realnet.data.datasets import DATASETS, load_images
from realnet.eval.evaluate import extract_features, knn_predict, knn_top1, linear_probe
from realnet.nets.resnet import build_backbone


def gaussian_classes(n, d, c, sep, seed):
    g = torch.Generator().manual_seed(seed)
    centres = sep * torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def binomial_halfwidth(p, n, sigmas=4.0):
    return 100 * sigmas * math.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------------------------------- kNN

def test_knn_separable_clusters_is_perfect():
    # Cluster centres at distance ~sep*sqrt(2d) apart, unit noise: cosine neighbourhoods are pure.
    x, y = gaussian_classes(600, 16, 5, sep=8.0, seed=0)
    assert knn_top1(x[:400], y[:400], x[400:], y[400:], num_classes=5) == 100.0


def test_knn_random_labels_is_at_chance():
    # Test labels independent of everything else: each prediction is right with probability 1/C.
    g = torch.Generator().manual_seed(1)
    c, n = 10, 2000
    xtr, xte = torch.randn(1000, 8, generator=g), torch.randn(n, 8, generator=g)
    ytr, yte = torch.randint(0, c, (1000,), generator=g), torch.randint(0, c, (n,), generator=g)
    acc = knn_top1(xtr, ytr, xte, yte, num_classes=c)
    assert abs(acc - 100 / c) <= binomial_halfwidth(1 / c, n)


def brute_force_knn(xtr, ytr, xte, k, t, c):
    xtr = xtr.double().numpy()
    xte = xte.double().numpy()
    xtr /= np.linalg.norm(xtr, axis=1, keepdims=True)
    xte /= np.linalg.norm(xte, axis=1, keepdims=True)
    preds = []
    for q in xte:
        sims = xtr @ q
        order = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(c)
        for j in order:
            votes[ytr[j]] += math.exp(sims[j] / t)
        preds.append(int(np.argmax(votes)))
    return np.array(preds)


@pytest.mark.parametrize("k", [1, 7, 200, 5000])
def test_knn_matches_brute_force(k):
    x, y = gaussian_classes(500, 6, 4, sep=0.7, seed=2)
    pred = knn_predict(x[:300], y[:300], x[300:], k=k, temperature=0.1, num_classes=4, chunk_size=64)
    ref = brute_force_knn(x[:300], y[:300].numpy(), x[300:], min(k, 300), 0.1, 4)
    # continuous random features: no similarity ties, so the neighbour sets and votes agree exactly
    assert np.array_equal(pred.numpy(), ref)


def test_knn_refuses_unlabelled_training_images():
    x, y = gaussian_classes(20, 4, 2, 1.0, 3)
    y[0] = -1
    with pytest.raises(ValueError, match="train_labels"):
        knn_top1(x, y, x, y.clamp_min(0), num_classes=2)
    with pytest.raises(ValueError, match="temperature"):
        knn_top1(x, y.clamp_min(0), x, y.clamp_min(0), num_classes=2, temperature=0.0)


# ------------------------------------------------------------------------------- linear probe

def test_linear_probe_matches_sklearn_logistic_regression():
    c, n = 5, 1500
    x, y = gaussian_classes(2 * n, 20, c, sep=0.6, seed=4)
    xtr, ytr, xte, yte = x[:n], y[:n], x[n:], y[n:]
    mean, std = xtr.mean(0), xtr.std(0, unbiased=False)
    ztr, zte = ((xtr - mean) / std).double().numpy(), ((xte - mean) / std).double().numpy()
    clf = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(ztr, ytr.numpy())
    sk_acc = 100 * clf.score(zte, yte.numpy())
    # sklearn minimises sum_i CE_i + ||W||^2 / 2 (C = 1); per sample that is weight_decay = 1/n.
    logits = ztr @ clf.coef_.T + clf.intercept_
    logits -= logits.max(1, keepdims=True)
    ce = -(logits[np.arange(n), ytr.numpy()] - np.log(np.exp(logits).sum(1))).mean()
    sk_obj = ce + 0.5 / n * (clf.coef_**2).sum()
    res = linear_probe(xtr, ytr, xte, yte, num_classes=c, epochs=100, weight_decay=1.0 / n)
    # Convex problem, same objective: Adam with a cosine-decayed lr ends near the optimum
    # (measured +0.3 %; 2 % allows other BLAS summation orders) and never below it beyond
    # float32 rounding (the sklearn point is the optimum to tol 1e-10).
    assert sk_obj - 1e-4 <= res["train_objective"] <= 1.02 * sk_obj
    # Two near-optimal linear classifiers on 1500 test points: differences come from points near
    # the boundary; 3 points is 2 binomial sd of a ~10 % error rate (sqrt(.1*.9/1500)=0.8 %) x 2.
    assert abs(res["top1"] - sk_acc) <= 3.0
    assert res["train_top1"] >= res["top1"] - 5.0  # no sign of a train/test mix-up


def test_linear_probe_is_deterministic_and_reports_the_final_epoch():
    x, y = gaussian_classes(400, 8, 3, sep=0.5, seed=5)
    a = linear_probe(x[:300], y[:300], x[300:], y[300:], num_classes=3, epochs=3, seed=7)
    b = linear_probe(x[:300], y[:300], x[300:], y[300:], num_classes=3, epochs=3, seed=7)
    assert a == b
    # the test set only enters the final evaluation: changing test labels cannot change training
    y2 = y.clone()
    y2[300:] = (y2[300:] + 1) % 3
    c = linear_probe(x[:300], y2[:300], x[300:], y2[300:], num_classes=3, epochs=3, seed=7)
    assert c["train_top1"] == a["train_top1"] and c["train_loss"] == a["train_loss"]


def test_linear_probe_bad_arguments():
    x, y = gaussian_classes(40, 4, 2, 1.0, 6)
    for kwargs, key in (({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"weight_decay": -1.0}, "weight_decay")):
        with pytest.raises(ValueError, match=key):
            linear_probe(x, y, x, y, num_classes=2, **kwargs)
    with pytest.raises(ValueError, match="test_labels"):
        linear_probe(x, y, x, y + 5, num_classes=2)


# ------------------------------------------------------------------------- feature extraction

def test_extract_features_eval_mode_batch_independent_and_restores_mode():
    torch.manual_seed(0)
    trunk, dim = build_backbone(stem="small", width=0.125, in_channels=1)
    spec = DATASETS["digits"]
    aug = GPUAugment(default_augment("digits"), spec)
    x = torch.randint(0, 256, (37, 1, 8, 8), dtype=torch.uint8)
    trunk.train()
    f_big = extract_features(trunk, x, aug, batch_size=64)
    f_small = extract_features(trunk, x, aug, batch_size=5)
    assert trunk.training  # restored
    assert f_big.shape == (37, dim) and f_big.dtype == torch.float32 and not f_big.requires_grad
    # eval-mode BN: a sample's features do not depend on its batch (float32 rounding only)
    torch.testing.assert_close(f_small, f_big, atol=1e-5, rtol=1e-5)
    trunk.eval()
    with torch.no_grad():
        torch.testing.assert_close(f_big, trunk(aug.normalise(x)), atol=1e-6, rtol=0)


def test_random_init_trunk_features_are_usable_on_digits():
    torch.manual_seed(0)
    spec = DATASETS["digits"]
    xtr, ytr = load_images("digits", None, "train")
    xte, yte = load_images("digits", None, "test")
    aug = GPUAugment(default_augment("digits"), spec)
    trunk, _ = build_backbone(stem="small", width=0.125, in_channels=1)
    ftr, fte = extract_features(trunk, xtr, aug), extract_features(trunk, xte, aug)
    # Usable = significantly above chance (10 %): beyond 4 binomial sd on 355 test images.
    # (Measured: kNN 63 %, probe 80 %; raw-pixel kNN reaches 96 %.)
    bound = 10.0 + binomial_halfwidth(0.1, len(yte))
    assert knn_top1(ftr, ytr, fte, yte, num_classes=10) > bound
    assert linear_probe(ftr, ytr, fte, yte, num_classes=10, epochs=20)["top1"] > bound
