"""Losses against brute-force numpy (realnet/methods/losses.py)."""
import numpy as np
import pytest
import torch

from realnet.methods.losses import LOSSES, byol_cosine, l2_loss


def np_byol(p: np.ndarray, z: np.ndarray) -> float:
    """BYOL's per-pair loss written as the squared distance of the unit vectors."""
    return float(np.mean([np.sum((a / np.linalg.norm(a) - b / np.linalg.norm(b)) ** 2)
                          for a, b in zip(p, z)]))


def np_l2(p: np.ndarray, z: np.ndarray) -> float:
    return float(np.mean([0.5 * np.sum((a - b) ** 2) for a, b in zip(p, z)]))


@pytest.fixture
def pz():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)


# float32 reductions over d = 16 and B = 32 terms: relative error <~ (d + B) u = 48 * 6e-8 = 3e-6;
# 1e-5 covers it. A wrong normalisation or a missing 1/2 is an O(1) relative change.
TOL = dict(rel=1e-5, abs=1e-6)


def test_byol_cosine_matches_brute_force(pz):
    p, z = pz
    assert byol_cosine(p, z).item() == pytest.approx(np_byol(p.double().numpy(), z.double().numpy()), **TOL)
    # 0 for identical directions, 4 for opposite ones (exact up to rounding of norms)
    assert byol_cosine(p, 3 * p).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_cosine(p, -p).item() == pytest.approx(4.0, abs=1e-6)


def test_byol_cosine_is_twice_eqn1_on_normalised_vectors_and_has_the_paper_gradient(pz):
    """The scale the recipe's lr and wd are tuned for: ``2 - 2 cos = 2 * (1/2 |p^ - z^|^2)`` and its
    gradient is that of the paper's code's ``-2 cos`` (half of it would train like lr / 2)."""
    p, z = pz
    pn, zn = torch.nn.functional.normalize(p, dim=1), torch.nn.functional.normalize(z, dim=1)
    assert byol_cosine(p, z).item() == pytest.approx(2 * l2_loss(pn, zn).item(), **TOL)
    a, b = p.clone().requires_grad_(True), p.clone().requires_grad_(True)
    byol_cosine(a, z).backward()
    (-2 * torch.nn.functional.cosine_similarity(b, z, dim=1, eps=1e-12)).mean().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_byol_cosine_is_scale_invariant(pz):
    p, z = pz
    g = torch.Generator().manual_seed(1)
    a = torch.rand(32, 1, generator=g) * 100 + 0.01  # positive per-sample scales over 4 decades
    b = torch.rand(32, 1, generator=g) * 100 + 0.01
    # normalisation removes the scale up to float32 rounding of the norms: ~d u = 1e-6 relative
    torch.testing.assert_close(byol_cosine(a * p, b * z), byol_cosine(p, z), rtol=1e-5, atol=1e-5)
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


def test_losses_compute_in_float32_and_registry(pz):
    p, z = pz
    out = byol_cosine(p.bfloat16(), z.bfloat16())
    assert out.dtype == torch.float32
    # bf16 rounding (relative 2^-9 per entry, so per vector) moves each unit vector by
    # <= 2 * 2^-9 and so each cosine by <= 4 * 2^-9 = 7.8e-3, the loss (2 - 2 cos) by twice that
    assert out.item() == pytest.approx(byol_cosine(p, z).item(), abs=1.6e-2)
    assert LOSSES == {"cosine": byol_cosine, "l2": l2_loss}
    with pytest.raises(ValueError, match="p, z"):
        byol_cosine(p, z[:, :8])
