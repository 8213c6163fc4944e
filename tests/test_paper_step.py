"""The training step against an independent, hand-written step of the paper's public code.

The reference below follows that code's order (THEORY.md, section 4): forward both views,
update the running correlation with both views' online outputs, predict, take the target outputs
without gradient, loss ``mean_i(-2 cos(p1_i, t2_i) - 2 cos(p2_i, t1_i))``, SGD with heavy-ball
momentum and coupled weight decay (``v <- m v + g + wd w``, ``w <- w - lr v``; the first step sets
``v = g + wd w``), then DirectPred's ``Wp`` from the eigen-decomposition of ``F`` (numpy, float64),
then the EMA of the target's parameters. It shares no code with ``realnet`` beyond the network
modules it evaluates. Both run in float64, so the only differences are the order of floating-point
operations: after 5 steps they stay below 1e-9 relative (measured: 1e-14); a loss of half
the scale (``-cos - cos``) differs by O(1) (measured: 2.6 relative on the worst online weight).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from realnet.config.train_config import load_config
from realnet.data.datasets import dataset_spec
from realnet.training.optim import build_optimizer
from realnet.training.runtime import Runtime
from realnet.training.step import build_train_step, param_groups

TINY = ["train.batch_size=16", "model.width=0.0625", "model.proj_hidden_dim=16",
        "model.proj_dim=8", "optim.lr=0.05", "optim.weight_decay=4e-3", "method.ema=0.9"]
STEPS = 5


def _directpred(F: np.ndarray, eps: float, floor: float = 1e-4) -> np.ndarray:
    s, U = np.linalg.eigh(F)
    p = np.maximum(np.sqrt(np.maximum(s, 0) / s.max()) + eps, floor)
    return (U * p) @ U.T


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


class PaperStep:
    """The public code's BYOL step, written out by hand (module docstring)."""

    def __init__(self, online, target, Wp, lr, lr_p, wd, wd_p, momentum, ema, rho, eps,
                 predictor: str, loss_scale: float = 2.0):
        self.online, self.target = copy.deepcopy(online), copy.deepcopy(target)
        self.Wp = Wp.clone().requires_grad_(predictor == "linear")
        self.lr, self.lr_p, self.wd, self.wd_p = lr, lr_p, wd, wd_p
        self.m, self.ema, self.rho, self.eps = momentum, ema, rho, eps
        self.predictor, self.scale = predictor, loss_scale
        self.F: np.ndarray | None = None
        self.buf: dict[int, torch.Tensor] = {}

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor) -> None:
        z1, z2 = self.online(x1), self.online(x2)
        f = torch.cat([z1, z2]).detach().numpy()
        moment = f.T @ f / len(f)
        self.F = moment if self.F is None else self.rho * self.F + (1 - self.rho) * moment
        p1, p2 = z1 @ self.Wp.T, z2 @ self.Wp.T
        with torch.no_grad():
            t1, t2 = self.target(x1), self.target(x2)
        loss = (-self.scale * _cos(p1, t2) - self.scale * _cos(p2, t1)).mean()
        params = [(w, self.lr, self.wd) for w in self.online.parameters()]
        if self.predictor == "linear":
            params.append((self.Wp, self.lr_p, self.wd_p))
        grads = torch.autograd.grad(loss, [w for w, _, _ in params])
        with torch.no_grad():
            for (w, lr, wd), g in zip(params, grads):
                d = g + wd * w
                v = self.buf[id(w)] = d if id(w) not in self.buf else self.m * self.buf[id(w)] + d
                w -= lr * v
            if self.predictor == "directpred":
                self.Wp.copy_(torch.from_numpy(_directpred(self.F, self.eps)))
            for wt, wo in zip(self.target.parameters(), self.online.parameters()):
                wt.copy_(self.ema * wt + (1 - self.ema) * wo)


def _run(predictor: str, extra: list[str], loss_scale: float = 2.0):
    cfg = load_config("digits", TINY + [f"predictor.name={predictor}", *extra])
    rt = Runtime(torch.device("cpu"), bf16=False, channels_last=False, compile=False)
    step = build_train_step(cfg, dataset_spec("digits"), rt)
    step.model.double()
    # the optimiser was built on the float32 parameters; rebuild it on the float64 ones
    step.optimizer = build_optimizer(param_groups(step.model, cfg), cfg.optim)
    model = step.model
    Wp0 = model.predictor.weight_matrix().double()
    lr, wd = cfg.optim.lr, cfg.optim.weight_decay
    wd_p = wd if cfg.predictor.weight_decay is None else cfg.predictor.weight_decay
    ref = PaperStep(model.online, model.target, Wp0, lr, cfg.predictor.lr_ratio * lr, wd, wd_p,
                    cfg.optim.momentum, cfg.method.ema, cfg.predictor.rho, cfg.predictor.eps,
                    predictor, loss_scale)
    g = torch.Generator().manual_seed(0)
    for k in range(STEPS):
        x1 = torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64)
        x2 = x1 + 0.3 * torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64)
        step.update(x1, x2, k, 1.0, cfg.method.ema)
        ref(x1, x2)
    return model, ref


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("predictor, extra", [
    ("directpred", []),
    ("linear", ["predictor.lr_ratio=10", "predictor.weight_decay=1e-2"]),
])
def test_training_step_equals_the_paper_codes_step(predictor, extra):
    model, ref = _run(predictor, extra)
    for (name, a), b in zip(model.online.named_parameters(), ref.online.parameters()):
        assert _max_rel(a.detach(), b.detach()) < 1e-9, f"online {name}"
    for (name, a), b in zip(model.target.named_parameters(), ref.target.parameters()):
        assert _max_rel(a.detach(), b.detach()) < 1e-9, f"target {name}"
    assert _max_rel(model.predictor.weight_matrix(), ref.Wp.detach()) < 1e-9


def test_half_the_loss_scale_is_detected():
    """The test above can fail: a ``-cos - cos`` reference (half the gradient) moves the online
    weights visibly away after 5 steps."""
    model, ref = _run("directpred", [], loss_scale=1.0)
    worst = max(_max_rel(a.detach(), b.detach())
                for a, b in zip(model.online.parameters(), ref.online.parameters()))
    assert worst > 1e-4
