"""Hyperparameter mapping from a run config to the theory (analysis.hparams) against hand
computations. Every expected value below is written out by hand from THEORY.md section 1 and the
module's stated conventions; tolerance 1e-12 relative (a few float64 operations)."""
import copy

import numpy as np
import pytest

from analysis.hparams import map_hparams, time_of_steps

REL = 1e-12


def _cfg(**over):
    cfg = {
        "seed": 0,
        "method": {"name": "byol", "ema": 0.996, "ema_schedule": "constant", "loss": "cosine",
                   "symmetric": True},
        "predictor": {"name": "linear", "lr_ratio": 1.0, "weight_decay": None},
        "optim": {"name": "sgd", "lr": 0.03, "momentum": 0.9, "weight_decay": 4e-4,
                  "schedule": "constant", "warmup_steps": 0},
    }
    for key, v in over.items():
        sec, k = key.split("__")
        cfg[sec][k] = v
    return cfg


def test_paper_convention_byol_0996_at_lr_003():
    hp = map_hparams(_cfg(), "paper")
    assert hp.a == pytest.approx(0.03, rel=REL)
    assert hp.beta == pytest.approx(0.004 / 0.03, rel=REL)          # = 0.1333...
    assert hp.beta == pytest.approx(0.133333333333, rel=1e-10)
    assert hp.eta == pytest.approx(4e-4, rel=REL) and hp.eta_p == pytest.approx(4e-4, rel=REL)
    assert hp.alpha_p == 1.0 and hp.loss_terms == 1 and hp.momentum_factor == 1.0


def test_continuous_convention_counts_momentum_symmetrised_loss_and_loss_scale():
    hp = map_hparams(_cfg(), "continuous")
    a = 0.03 * 2 * 2 / (1 - 0.9)                     # loss scale 2 (2 - 2cos), 2 pairs: 1.2
    assert hp.a == pytest.approx(1.2, rel=REL) and hp.a == pytest.approx(a, rel=REL)
    assert hp.beta == pytest.approx(0.004 / 1.2, rel=REL)            # 0.00333
    assert hp.eta == pytest.approx(1e-4, rel=REL)                    # wd / (2 x 2)
    assert hp.momentum_factor == pytest.approx(10.0, rel=REL) and hp.loss_scale == 2.0
    # the theory's own L2 loss (Eqn 1) has scale 1
    l2 = map_hparams(_cfg(method__loss="l2"), "continuous")
    assert l2.a == pytest.approx(0.6, rel=REL) and l2.eta == pytest.approx(2e-4, rel=REL)
    # gamma_a = 1 - a beta recovers the EMA momentum in either convention
    for conv in ("paper", "continuous"):
        h = map_hparams(_cfg(), conv)
        assert 1 - h.a * h.beta == pytest.approx(0.996, rel=REL)


def test_unsymmetrised_l2_loss_no_momentum_reduces_to_the_paper_mapping():
    hp = map_hparams(_cfg(method__symmetric=False, optim__momentum=0.0, method__loss="l2"),
                     "continuous")
    assert hp.a == pytest.approx(0.03, rel=REL) and hp.eta == pytest.approx(4e-4, rel=REL)
    assert hp.beta == pytest.approx(0.004 / 0.03, rel=REL)


def test_predictor_lr_ratio_and_weight_decay_and_simsiam():
    hp = map_hparams(_cfg(predictor__lr_ratio=10.0, predictor__weight_decay=1e-3,
                          method__name="simsiam"), "paper")
    assert hp.alpha_p == 10.0
    assert hp.eta_p == pytest.approx(1e-3, rel=REL) and hp.eta == pytest.approx(4e-4, rel=REL)
    assert hp.beta is None and hp.gamma_a is None                    # SimSiam: tau = 1


def test_time_of_steps_constant_and_piecewise_lr():
    hp = map_hparams(_cfg(), "continuous")
    np.testing.assert_allclose(time_of_steps([0, 10, 250], hp), [0.0, 12.0, 300.0], rtol=REL)
    # logged lr 0.03 for steps 1..10, 0.015 for 11..20 (by hand: t = a/lr * sum lr_k)
    t = time_of_steps([5, 10, 15, 20, 30], hp, ([10, 20], [0.03, 0.015]))
    scale = hp.a / 0.03
    expect = scale * np.array([5 * 0.03, 10 * 0.03, 10 * 0.03 + 5 * 0.015,
                               10 * 0.03 + 10 * 0.015, 10 * 0.03 + 20 * 0.015])
    np.testing.assert_allclose(t, expect, rtol=REL)


def test_bad_input_names_the_key():
    bad = _cfg()
    bad["optim"]["momentum"] = 1.0
    with pytest.raises(ValueError, match="optim.momentum"):
        map_hparams(bad)
    missing = copy.deepcopy(_cfg())  # a run written before a key existed: realnet's default
    del missing["optim"]["lr"]
    assert map_hparams(missing).a == pytest.approx(map_hparams({**_cfg(), "optim": {
        **_cfg()["optim"], "lr": 0.03}}).a, rel=REL)
    wrong = copy.deepcopy(_cfg())
    wrong["optim"]["lr"] = "0.03"
    with pytest.raises(ValueError, match="optim.lr"):
        map_hparams(wrong)
    with pytest.raises(ValueError, match="convention"):
        map_hparams(_cfg(), "nope")
    with pytest.raises(ValueError, match="steps"):
        time_of_steps([-1], map_hparams(_cfg()))


def test_notes_flag_the_approximations():
    hp = map_hparams(_cfg(optim__name="lars", optim__schedule="cosine",
                          method__ema_schedule="cosine"))
    text = " ".join(hp.notes)
    assert "lars" in text and "schedule" in text and "EMA" in text


def test_maps_the_resolved_config_the_trainer_writes():
    realnet_config = pytest.importorskip("realnet.config.train_config")
    cfg = realnet_config.config_to_dict(realnet_config.load_config("digits"))
    hp = map_hparams(cfg)
    assert hp.a == pytest.approx(cfg["optim"]["lr"] * 4 / (1 - cfg["optim"]["momentum"]), rel=REL)
    assert hp.beta == pytest.approx((1 - cfg["method"]["ema"]) / hp.a, rel=REL)


def test_loss_scale_table_matches_the_training_losses():
    """LOSS_SCALE[name] * (Eqn 1 on the normalised vectors) is realnet's loss of that name."""
    torch = pytest.importorskip("torch")
    from realnet.methods.losses import LOSSES, l2_loss

    from analysis.hparams import LOSS_SCALE

    assert set(LOSS_SCALE) == set(LOSSES)
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(64, 8, generator=g, dtype=torch.float64), torch.randn(64, 8, generator=g,
                                                                              dtype=torch.float64)
    pn, zn = torch.nn.functional.normalize(p, dim=1), torch.nn.functional.normalize(z, dim=1)
    assert LOSSES["cosine"](p, z).item() == pytest.approx(LOSS_SCALE["cosine"] * l2_loss(pn, zn).item(), rel=1e-12)
    assert LOSSES["l2"](p, z).item() == pytest.approx(LOSS_SCALE["l2"] * l2_loss(p, z).item(), rel=1e-12)
