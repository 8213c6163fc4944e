"""SimCLR's NT-Xent and SwAV's Sinkhorn codes and swapped-prediction loss against brute-force
computations (values and gradients), and both methods training end to end."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from realnet.config.train_config import load_config
from realnet.methods.contrastive import nt_xent, sinkhorn, swav_loss, swav_multicrop_loss
from realnet.training.trainer import train


def _nt_xent_loop(z1, z2, t):
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n2, n = len(z), len(z1)
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        denom = sum(torch.exp(z[i] @ z[k] / t) for k in range(n2) if k != i)
        total = total - torch.log(torch.exp(z[i] @ z[pos] / t) / denom)
    return total / n2


@pytest.mark.parametrize("t", [0.5, 0.1])
def test_nt_xent_equals_the_double_loop_with_its_gradient(t):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    fast, slow = nt_xent(z1, z2, t), _nt_xent_loop(z1, z2, t)
    assert fast.item() == pytest.approx(slow.item(), rel=1e-12)
    g_fast = torch.autograd.grad(fast, (z1, z2))
    g_slow = torch.autograd.grad(slow, (z1, z2))
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # identical views far apart from the others: the loss is near its floor log(1) = 0 ...
    e = torch.eye(4, dtype=torch.float64)
    assert nt_xent(e, e, 0.05).item() < 1e-6
    # ... and views that are all the same point: log(2B - 1)
    same = torch.ones(4, 3, dtype=torch.float64)
    assert nt_xent(same, same, 0.5).item() == pytest.approx(math.log(7), rel=1e-12)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, 0.0)


def test_sinkhorn_marginals_and_a_brute_force_iteration():
    g = torch.Generator().manual_seed(1)
    scores = torch.nn.functional.normalize(torch.randn(12, 5, generator=g, dtype=torch.float64), dim=1) @ \
        torch.nn.functional.normalize(torch.randn(7, 5, generator=g, dtype=torch.float64), dim=1).T
    q = sinkhorn(scores, epsilon=0.05, iterations=3)
    assert q.shape == (12, 7)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(12, dtype=torch.float64), rtol=0, atol=1e-12)
    converged = sinkhorn(scores, epsilon=0.05, iterations=500)  # both marginals prescribed
    torch.testing.assert_close(converged.sum(dim=1), torch.ones(12, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(converged.sum(dim=0), torch.full((7,), 12 / 7, dtype=torch.float64),
                               rtol=0, atol=1e-6)
    # brute force: the same alternating scaling written out with numpy
    Q = np.exp(scores.numpy().T / 0.05)
    Q /= Q.sum()
    K, B = Q.shape
    for _ in range(3):
        Q /= Q.sum(axis=1, keepdims=True) * K
        Q /= Q.sum(axis=0, keepdims=True) * B
    np.testing.assert_allclose(q.numpy(), (Q * B).T, rtol=1e-12)


def test_swav_loss_equals_brute_force():
    g = torch.Generator().manual_seed(2)
    s1, s2 = (torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(2))
    q1, q2 = sinkhorn(s1), sinkhorn(s2)
    t = 0.1
    brute = 0.0
    for i in range(5):
        for k in range(4):
            brute -= 0.5 * (q2[i, k] * torch.log(torch.softmax(s1[i] / t, 0)[k]) +
                            q1[i, k] * torch.log(torch.softmax(s2[i] / t, 0)[k])) / 5
    assert swav_loss(s1, s2, q1, q2, t).item() == pytest.approx(brute.item(), rel=1e-12)


def test_swav_multicrop_loss_equals_brute_force_and_the_two_view_loss():
    """4 views, codes from the first two: every coded view predicted by each of the other three."""
    g = torch.Generator().manual_seed(3)
    scores = [torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    codes = [sinkhorn(scores[0].detach()), sinkhorn(scores[1].detach())]
    t = 0.1
    brute, n = 0.0, 0
    for i, q in enumerate(codes):
        for v in range(4):
            if v == i:
                continue
            n += 1
            for b in range(5):
                for k in range(4):
                    brute = brute - q[b, k] * torch.log(torch.softmax(scores[v][b] / t, 0)[k]) / 5
    brute = brute / n
    fast = swav_multicrop_loss(scores, codes, t)
    assert n == 6 and fast.item() == pytest.approx(brute.item(), rel=1e-12)
    for a, b in zip(torch.autograd.grad(fast, scores), torch.autograd.grad(brute, scores)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    two = swav_multicrop_loss(scores[:2], codes, t)
    assert two.item() == pytest.approx(swav_loss(scores[0], scores[1], codes[0], codes[1], t).item(), rel=1e-12)
    with pytest.raises(ValueError, match="2 or more views"):
        swav_multicrop_loss(scores[:1], codes[:1])


FAST = ["train.steps=8", "log.every=4", "log.spectra_every=4", "log.checkpoint_every=4",
        "log.probe_size=64", "eval.probe_epochs=2", "eval.knn_k=5", "data.ssl_limit=256",
        "data.train_limit=200", "data.test_limit=100", "train.batch_size=32",
        "eval.pixel_baseline=false", "predictor.name=identity"]


def test_simclr_and_swav_train_and_log_alignment_uniformity(tmp_path):
    """Both train through the trainer (the method selects its one predictor, identity) and log
    alignment and uniformity. Measured on digits, 8 steps of 32 (seed 0, bf16 and fp32 alike):
    SimCLR spreads the outputs that start almost collapsed (uniformity -0.10 at step 0, -0.31 at
    step 8); SwAV's loss falls from 3.35 to 2.55 between the logged steps 4 and 8."""
    import json

    fast = [o for o in FAST if not o.startswith("predictor.name")]
    for method in ("simclr", "swav"):
        over = fast + [f"method.name={method}", "method.swav_prototypes=10", "method.swav_freeze_steps=4"]
        cfg = load_config("digits", over)
        assert cfg.predictor.name == "identity"  # selected by the method
        res = train(cfg, tmp_path / method, quiet=True)
        lines = [json.loads(ln) for ln in (tmp_path / method / "spectra.jsonl").read_text().splitlines()]
        assert res["spectra"]["uniform"] == lines[-1]["uniform"]  # the summary is the last snapshot
        losses = [json.loads(ln)["loss"] for ln in (tmp_path / method / "metrics.jsonl").read_text().splitlines()
                  if "loss" in json.loads(ln) and not json.loads(ln).get("final")]
        if method == "simclr":
            assert lines[-1]["uniform"] < lines[0]["uniform"] - 0.1
        else:
            assert losses[-1] < losses[0] - 0.2
    with pytest.raises(ValueError, match="predictor.name='linear' is invalid: allowed identity with method.name=simclr"):
        load_config("digits", ["method.name=simclr", "predictor.name=linear"])


def test_swav_prototypes_stay_frozen_then_learn(tmp_path):
    from realnet.data.pools import load_run_data
    from realnet.training.runtime import resolve_runtime
    from realnet.data.pools import BatchOrder
    from realnet.training.step import build_train_step

    cfg = load_config("digits", FAST + ["method.name=swav", "method.swav_prototypes=10",
                                        "method.swav_freeze_steps=2", "train.bf16=false"])
    rt = resolve_runtime(cfg)
    data = load_run_data(cfg.data, cfg.train.batch_size, rt.device)
    step = build_train_step(cfg, data.spec, rt)
    order = BatchOrder(len(data.ssl), 32, 0)
    w0 = step.model.prototypes.layer.weight.detach().clone()
    for k in range(3):
        step(data.ssl.batch(order, k), k, 1.0, 0.0)
        w = step.model.prototypes.layer.weight.detach()
        if k < 2:  # frozen: only the per-step renormalisation touches them (and they are unit rows)
            torch.testing.assert_close(w, w0, rtol=0, atol=1e-7)
    assert (w - w0).abs().max() > 1e-5


def test_swav_multicrop_adds_small_views_after_the_two_it_always_drew(tmp_path):
    """With 2 small crops a step sees 4 views, the small ones at their own size; the two full-size
    views are the ones a run without multi-crop draws (same generator stream); the run trains;
    and multi-crop with another method is refused by name."""
    from realnet.data.pools import load_run_data
    from realnet.training.runtime import resolve_runtime
    from realnet.data.pools import BatchOrder
    from realnet.training.step import build_train_step

    base = FAST + ["method.name=swav", "method.swav_prototypes=10", "train.bf16=false",
                   "train.channels_last=false"]
    cfg = load_config("digits", base + ["method.swav_small_crops=2", "method.swav_small_size=6"])
    cfg0 = load_config("digits", base)
    rt = resolve_runtime(cfg)
    data = load_run_data(cfg.data, cfg.train.batch_size, rt.device)
    batch = data.ssl.batch(BatchOrder(len(data.ssl), 32, 0), 0)
    views = build_train_step(cfg, data.spec, rt).views(batch)
    plain = build_train_step(cfg0, data.spec, rt).views(batch)
    assert [tuple(v.shape[-2:]) for v in views] == [(8, 8), (8, 8), (6, 6), (6, 6)]
    assert len(plain) == 2 and all(torch.equal(a, b) for a, b in zip(views, plain))
    assert not torch.equal(views[2], views[3])
    res = train(cfg, tmp_path / "mc", quiet=True)
    assert np.isfinite(res["linear_top1"]) and np.isfinite(res["spectra"]["uniform"])
    assert cfg.method.small_size(32) == 6  # set; auto: SwAV's 96/224 of the view, at least 8
    assert cfg0.method.small_size(32) == 14 and cfg0.method.small_size(20) == 9 and cfg0.method.small_size(8) == 8
    with pytest.raises(ValueError, match="method.swav_small_crops=2 is invalid: allowed 0 with method.name='byol'"):
        load_config("digits", ["method.swav_small_crops=2"])


def test_groupnorm_ws_variant_holds_no_batch_statistics():
    """The no-batch-statistics variant (GN + WS trunk, GroupNorm heads) has no BatchNorm, and a
    sample's outputs in train mode do not depend on the rest of the batch; the default has
    BatchNorm and they do."""
    from realnet.data.datasets import dataset_spec
    from realnet.nets.ssl_model import build_ssl_model
    from realnet.nets.norms import WSConv2d, batch_statistics_modules

    x = torch.randn(6, 1, 8, 8)
    for over, free in ((["model.trunk_norm=groupnorm_ws", "model.head_norm=groupnorm",
                         "predictor.name=mlp"], True),
                       (["model.head_norm=none", "predictor.name=mlp"], False),
                       (["predictor.name=mlp"], False)):
        model = build_ssl_model(load_config("digits", over), dataset_spec("digits")).train()
        assert (batch_statistics_modules(model) == []) == free, over
        with torch.no_grad():
            full = model.predictor(model.online(x))[:2]
            part = model.predictor(model.online(x[:2]))
        assert torch.allclose(full, part, atol=1e-5) == free, over
    gnws = build_ssl_model(load_config("digits", ["model.trunk_norm=groupnorm_ws"]), dataset_spec("digits"))
    assert all(isinstance(m, WSConv2d) for m in gnws.online.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    heads = build_ssl_model(load_config("digits", ["model.head_norm=none", "predictor.name=mlp"]),
                            dataset_spec("digits"))
    assert batch_statistics_modules(heads.online.projector) == [] and \
        batch_statistics_modules(heads.predictor) == [] and batch_statistics_modules(heads.online.backbone)


def test_a_new_method_is_one_registry_entry(tmp_path, monkeypatch):
    """A method is its step loss plus one entry in realnet.methods.registry.METHODS: a toy
    method (the normalised views pulled together, with a uniformity term that keeps them apart)
    trains through the whole trainer with no other change, its unread keys reported inert."""
    import torch.nn.functional as Fn

    from realnet.config.diff import inert_keys
    from realnet.methods.losses import StepOutput, at_least_float32
    from realnet.methods.registry import METHODS, Method

    def toy_loss(model, x1, x2, *small):
        z1, z2 = model.online(x1), model.online(x2)
        a, b = Fn.normalize(z1.float(), dim=1), Fn.normalize(z2.float(), dim=1)
        uniform = torch.pdist(a).pow(2).mul(-2).exp().mean().log()
        z = at_least_float32(torch.stack([z1.detach(), z2.detach()]))
        return StepOutput((a - b).pow(2).sum(1).mean() + uniform, z, z)

    monkeypatch.setitem(METHODS, "toy", Method("toy", lambda m: toy_loss, only_predictor="identity"))
    cfg = load_config("digits", [o for o in FAST if not o.startswith("predictor.name")] + ["method.name=toy"])
    assert cfg.predictor.name == "identity"
    assert {"method.ema", "method.loss", "method.temperature"} <= set(inert_keys(cfg))
    res = train(cfg, tmp_path / "toy", quiet=True)
    assert res["steps"] == 8
    before = torch.load(tmp_path / "toy" / "checkpoints" / "last.pt", weights_only=True)["model"]
    from realnet.nets.ssl_model import build_ssl_model
    from realnet.data.datasets import dataset_spec

    init = build_ssl_model(cfg, dataset_spec("digits")).state_dict()
    moved = [k for k in init if init[k].is_floating_point() and not torch.equal(init[k], before[k])]
    assert any(k.startswith("online.backbone.") for k in moved)  # the toy loss trained the trunk
