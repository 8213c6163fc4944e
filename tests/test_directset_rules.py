"""The DirectSet(alpha) spectrum rule exists once (:func:`dynamics.directset.directset_spectrum`),
written with what numpy arrays and torch tensors share, and both layers call it: the theory's
:func:`dynamics.sgd.directset_p` (numpy) and realnet's predictors
(:func:`realnet.methods.directset.directpred_weight`, torch). This pins the two backends equal on
the same spectra: positive, with negative round-off entries, with exact zeros, all zero, and
batched; for DirectPred (alpha 1/2), DirectCopy-like (alpha 1) and other exponents, eps and floors.
The operations are the same; only the backends' ``pow`` may differ in the last bits, so 1e-13
relative covers it (a different normalisation or a misplaced eps is an O(eps) difference)."""
import numpy as np
import pytest
import torch

from dynamics.sgd import DirectPredConfig, directset_p
from realnet.methods.predictors import directset_spectrum

SPECTRA = {
    "positive": np.geomspace(3.0, 1e-6, 16),
    "negative round-off": np.r_[np.geomspace(2.0, 1e-3, 8), [-1e-9, -3e-7]],
    "zeros": np.r_[[5.0, 1.0], np.zeros(4)],
    "all zero": np.zeros(6),
    "batched": np.random.default_rng(0).gamma(0.5, size=(4, 12)),
}


@pytest.mark.parametrize("alpha, eps, floor", [(0.5, 0.1, 1e-4), (0.5, 0.0, 1e-4), (1.0, 0.25, 1e-4),
                                               (0.3, 0.01, 1e-3), (2.0, 0.0, 1e-6)])
@pytest.mark.parametrize("name", list(SPECTRA))
def test_numpy_and_torch_directset_rules_agree(name, alpha, eps, floor):
    s = SPECTRA[name]
    want = directset_p(s, DirectPredConfig(eps=eps, floor=floor, alpha=alpha))
    got = directset_spectrum(torch.from_numpy(s), alpha=alpha, eps=eps, floor=floor).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    if name == "positive":  # the check could fail: the top mode is 1 + eps
        assert got.max() == pytest.approx(1.0 + eps, rel=1e-15)


@pytest.mark.parametrize("cj", [0.1, 0.05, -0.05, -0.1])
@pytest.mark.parametrize("name", list(SPECTRA))
def test_the_cj_form_agrees_too(name, cj):
    s = SPECTRA[name]
    want = directset_p(s, DirectPredConfig(cj=cj))
    got = directset_spectrum(torch.from_numpy(s), cj=cj).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    if name == "positive":  # the top mode is (1 - cj)^(1/2): could fail if cj entered as + cj
        assert got.max() == pytest.approx((1.0 - cj) ** 0.5, rel=1e-15)



def test_both_layers_call_the_one_rule_and_it_is_the_papers():
    """One function object for the two layers, and its values on a hand-computed spectrum:
    s = (4, 1, 0, -1e-9) -> r = (1, 1/4, 0, 0); DirectPred p = (1.1, 0.6, 0.1, 0.1); the c_j form
    with c_j = 0.1, alpha 1/2: p = (sqrt(0.9), sqrt(0.15), 1e-2, 1e-2) (floor 1e-4 under the root)."""
    import dynamics.directset as shared
    import realnet.methods.directset as rn

    assert rn.directset_spectrum is shared.directset_spectrum
    s = np.array([4.0, 1.0, 0.0, -1e-9])
    np.testing.assert_allclose(directset_p(s), [1.1, 0.6, 0.1, 0.1], rtol=1e-15)
    np.testing.assert_allclose(directset_p(s, DirectPredConfig(cj=0.1)),
                               [0.9 ** 0.5, 0.15 ** 0.5, 1e-2, 1e-2], rtol=1e-15)
    got = shared.directset_spectrum(torch.tensor(s, dtype=torch.float32))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torch.tensor([1.1, 0.6, 0.1, 0.1]), rtol=1e-6, atol=0)
