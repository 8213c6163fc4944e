"""Optimisers, lr schedules (realnet/training/optim.py) and the EMA target (realnet/methods/ema.py)."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from realnet.methods.ema import ema_update, momentum_at
from realnet.training.optim import LARS, OptimConfig, build_optimizer, lr_at


# --------------------------------------------------------------------------------------------
# LARS
# --------------------------------------------------------------------------------------------
def test_lars_step_matches_hand_computation():
    lr, m, wd, eta = 0.5, 0.9, 0.1, 0.012
    w = nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))  # matrix: adapted
    b = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))          # 1-d: excluded
    z = nn.Parameter(torch.zeros(1, 2, dtype=torch.float64))            # zero weight: trust 1
    opt = LARS([w, b, z], lr=lr, momentum=m, weight_decay=wd, eta=eta)

    w.grad = torch.tensor([[0.3, -0.4]], dtype=torch.float64)
    b.grad = torch.tensor([0.5], dtype=torch.float64)
    z.grad = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    opt.step()
    # by hand: d = g + wd w = [0.3 + 0.3, -0.4 + 0.4] = [0.6, 0]; ||w|| = 5, ||d|| = 0.6;
    # r = 0.012 * 5 / 0.6 = 0.1; v = r d = [0.06, 0]; w <- w - 0.5 v = [2.97, 4].
    # bias: no wd, no trust ratio: v = 0.5, b <- 1 - 0.25 = 0.75.
    # zero weight: ||w|| = 0 so r = 1 (wd w = 0): v = [1, 0], z <- [-0.5, 0].
    # float64 arithmetic on these numbers: exact to ~1e-15
    np.testing.assert_allclose(w.detach().numpy(), [[2.97, 4.0]], rtol=0, atol=1e-14)
    np.testing.assert_allclose(b.detach().numpy(), [0.75], rtol=0, atol=1e-15)
    np.testing.assert_allclose(z.detach().numpy(), [[-0.5, 0.0]], rtol=0, atol=1e-15)

    w.grad = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    opt.step()
    # second step with momentum: d = [0, 1] + 0.1 [2.97, 4] = [0.297, 1.4];
    # r = 0.012 ||[2.97, 4]|| / ||d||; v = 0.9 [0.06, 0] + r d; w <- [2.97, 4] - 0.5 v.
    # bias: v = 0.9 * 0.5 + 0.5 = 0.95, b <- 0.75 - 0.475 = 0.275.
    d = np.array([0.297, 1.4])
    r = 0.012 * math.hypot(2.97, 4.0) / math.hypot(*d)
    want = np.array([2.97, 4.0]) - 0.5 * (0.9 * np.array([0.06, 0.0]) + r * d)
    np.testing.assert_allclose(w.detach().numpy()[0], want, rtol=0, atol=1e-14)
    np.testing.assert_allclose(b.detach().numpy(), [0.275], rtol=0, atol=1e-15)


def test_lars_trust_ratio_makes_the_step_scale_free():
    # The LARS step length ||lr * r * d|| = lr * eta * ||w|| does not depend on the gradient scale.
    def first_step(scale):
        w = nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
        w.grad = scale * torch.tensor([[0.3, -0.7]], dtype=torch.float64)
        LARS([w], lr=0.1, momentum=0.9, weight_decay=0.0, eta=0.01).step()
        return np.linalg.norm(w.detach().numpy() - [[3.0, 4.0]])

    for s in (1e-3, 1.0, 1e3):
        assert first_step(s) == pytest.approx(0.1 * 0.01 * 5.0, rel=1e-12)  # float64 rounding


# --------------------------------------------------------------------------------------------
# SGD through build_optimizer, schedules
# --------------------------------------------------------------------------------------------
def test_build_optimizer_sgd_defaults_and_group_overrides():
    cfg = OptimConfig()
    assert (cfg.name, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.schedule) == ("sgd", 0.03, 0.9, 4e-4, "constant")
    a = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    p = nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
    opt = build_optimizer([{"params": [a]}, {"params": [p], "lr": 0.3, "weight_decay": 0.0}], cfg)
    assert isinstance(opt, torch.optim.SGD)
    a.grad = torch.tensor([0.1, 0.2], dtype=torch.float64)
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step()
    # first momentum step: buffer = g + wd w; a <- a - 0.03 (g + 4e-4 a); p <- 0.5 - 0.3 * 1
    np.testing.assert_allclose(a.detach().numpy(), [1 - 0.03 * (0.1 + 4e-4), -2 - 0.03 * (0.2 - 8e-4)], atol=1e-15)
    np.testing.assert_allclose(p.detach().numpy(), [0.2], atol=1e-15)
    assert isinstance(build_optimizer([{"params": [a]}], dataclasses.replace(cfg, name="lars")), LARS)


def test_lr_at_warmup_cosine_constant():
    cos = OptimConfig(schedule="cosine", warmup_steps=4)
    # warm-up (k+1)/4, then cosine over the remaining 10 steps: progress 0, 0.5, 1 at k = 4, 9, 14
    got = [lr_at(k, 14, cos) for k in (0, 1, 2, 3, 4, 9, 14)]
    np.testing.assert_allclose(got, [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0], atol=1e-15)
    assert lr_at(6, 14, cos) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)), abs=1e-15)
    const = OptimConfig()
    assert [lr_at(k, 10, const) for k in (0, 5, 10)] == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="step"):
        lr_at(11, 10, const)
    with pytest.raises(ValueError, match="optim.warmup_steps"):
        lr_at(0, 4, dataclasses.replace(cos, warmup_steps=4))


@pytest.mark.parametrize("key,value", [
    ("name", "adam"), ("schedule", "step"), ("lr", 0.0), ("lr", float("inf")), ("momentum", 1.0),
    ("momentum", -0.1), ("weight_decay", -1e-4), ("warmup_steps", -1), ("warmup_steps", 1.5),
    ("lars_eta", 0.0),
])
def test_optim_config_rejects_bad_values_naming_the_key(key, value):
    with pytest.raises(ValueError, match=rf"optim\.{key}"):
        dataclasses.replace(OptimConfig(), **{key: value}).validate()


# --------------------------------------------------------------------------------------------
# EMA target
# --------------------------------------------------------------------------------------------
def _net(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))
    net(torch.randn(8, 4))  # train-mode forward: BN running stats and counter move
    return net


def test_ema_update_params_and_buffers():
    online, target = _net(0), _net(1)
    t0 = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update(target, online, 0.9)
    for (k, t), o in zip(target.named_parameters(), online.parameters()):
        # float32: lerp t + 0.1 (o - t) vs 0.9 t + 0.1 o differ by a few ulp of |t| + |o| <~ 2
        torch.testing.assert_close(t, 0.9 * t0[k] + 0.1 * o.detach(), rtol=0, atol=1e-6)
    for (k, t), o in zip(target.named_buffers(), online.buffers()):
        assert torch.equal(t, o), k  # copied exactly
    # m = 1 freezes the target exactly; the online network is never modified
    before = {k: v.clone() for k, v in target.named_parameters()}
    o_before = {k: v.clone() for k, v in online.state_dict().items()}
    ema_update(target, online, 1.0)
    assert all(torch.equal(before[k], v) for k, v in target.named_parameters())
    assert all(torch.equal(o_before[k], v) for k, v in online.state_dict().items())


def test_ema_update_refuses_mismatched_networks_and_bad_momentum():
    online, target = _net(0), _net(1)
    with pytest.raises(ValueError, match="target, online"):
        ema_update(nn.Linear(4, 5), nn.Linear(4, 6), 0.99)
    with pytest.raises(ValueError, match="momentum"):
        ema_update(target, online, 1.5)


def test_momentum_schedules():
    base = 0.996
    assert momentum_at(123, 1000, base) == base
    # BYOL cosine: base at k = 0, (1 + base)/2 half way, 1 at k = K (float64: ~1e-16)
    assert momentum_at(0, 1000, base, "cosine") == pytest.approx(base, abs=1e-15)
    assert momentum_at(500, 1000, base, "cosine") == pytest.approx((1 + base) / 2, abs=1e-15)
    assert momentum_at(1000, 1000, base, "cosine") == pytest.approx(1.0, abs=1e-15)
    k = 250
    assert momentum_at(k, 1000, base, "cosine") == pytest.approx(
        1 - (1 - base) * (math.cos(math.pi * k / 1000) + 1) / 2, abs=1e-15)
    vals = [momentum_at(k, 100, base, "cosine") for k in range(101)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))  # non-decreasing
    for bad in (dict(schedule="linear"), dict(base=1.1), dict(step=-1), dict(total_steps=0)):
        args = dict(step=0, total_steps=10, base=0.99, schedule="constant") | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            momentum_at(**args)
