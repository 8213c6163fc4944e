"""Losses against brute-force numpy (realnet/losses.py)."""
import numpy as np
import pytest
import torch

from realnet.losses import LOSSES, get_loss, l2_loss, negative_cosine, symmetrised_loss


def np_neg_cos(p: np.ndarray, z: np.ndarray) -> float:
    return float(np.mean([-(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(p, z)]))


def np_l2(p: np.ndarray, z: np.ndarray) -> float:
    return float(np.mean([0.5 * np.sum((a - b) ** 2) for a, b in zip(p, z)]))


@pytest.fixture
def pz():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)


# float32 reductions over d = 16 and B = 32 terms: relative error <~ (d + B) u = 48 * 6e-8 = 3e-6;
# 1e-5 covers it. A wrong normalisation or a missing 1/2 is an O(1) relative change.
TOL = dict(rel=1e-5, abs=1e-6)


def test_negative_cosine_matches_brute_force(pz):
    p, z = pz
    assert negative_cosine(p, z).item() == pytest.approx(np_neg_cos(p.double().numpy(), z.double().numpy()), **TOL)
    # bounds: -1 for identical directions, +1 for opposite ones (exact up to rounding of norms)
    assert negative_cosine(p, 3 * p).item() == pytest.approx(-1.0, abs=1e-6)
    assert negative_cosine(p, -p).item() == pytest.approx(1.0, abs=1e-6)


def test_negative_cosine_is_scale_invariant(pz):
    p, z = pz
    g = torch.Generator().manual_seed(1)
    a = torch.rand(32, 1, generator=g) * 100 + 0.01  # positive per-sample scales over 4 decades
    b = torch.rand(32, 1, generator=g) * 100 + 0.01
    # normalisation removes the scale up to float32 rounding of the norms: ~d u = 1e-6 relative
    torch.testing.assert_close(negative_cosine(a * p, b * z), negative_cosine(p, z), rtol=1e-5, atol=1e-6)
    # ... and l2 is not (the test could fail): scaling p changes it
    assert abs(l2_loss(2 * p, z).item() - l2_loss(p, z).item()) > 1.0


def test_l2_matches_brute_force(pz):
    p, z = pz
    assert l2_loss(p, z).item() == pytest.approx(np_l2(p.double().numpy(), z.double().numpy()), **TOL)


def test_gradient_of_l2_is_the_residual(pz):
    p, z = pz
    p = p.clone().requires_grad_(True)
    l2_loss(p, z).backward()
    # d/dp 1/2 mean_i ||p_i - z_i||^2 = (p - z) / B, exact to float32 rounding (a few ulp)
    torch.testing.assert_close(p.grad, (p.detach() - z) / 32, rtol=1e-6, atol=1e-7)


def test_symmetrised_loss_is_the_sum_over_view_orders(pz):
    p1, z1 = pz
    g = torch.Generator().manual_seed(2)
    p2, z2 = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    for fn in (negative_cosine, l2_loss):
        got = symmetrised_loss(fn, p1, p2, z1, z2).item()
        ref = {negative_cosine: np_neg_cos, l2_loss: np_l2}[fn]
        want = ref(p1.double().numpy(), z2.double().numpy()) + ref(p2.double().numpy(), z1.double().numpy())
        assert got == pytest.approx(want, **TOL)


def test_losses_compute_in_float32_and_registry(pz):
    p, z = pz
    out = negative_cosine(p.bfloat16(), z.bfloat16())
    assert out.dtype == torch.float32
    # bf16 rounding (relative 2^-9 per entry, so per vector) moves each unit vector by
    # <= 2 * 2^-9 and so each cosine by <= 4 * 2^-9 = 7.8e-3; 8e-3 is that bound
    assert out.item() == pytest.approx(negative_cosine(p, z).item(), abs=8e-3)
    assert get_loss("cosine") is negative_cosine and get_loss("l2") is l2_loss
    with pytest.raises(ValueError, match="loss") as err:
        get_loss("mse")
    assert all(k in str(err.value) for k in LOSSES)
    with pytest.raises(ValueError, match="p, z"):
        negative_cosine(p, z[:, :8])
