"""The speed benchmark, its conventional baseline, the shared training step and the same-numerics
check, at smoke size on the CPU."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from realnet.tools import bench, numerics
from realnet.data.augment import AugmentConfig
from realnet.tools.baseline import conventional_loader
from realnet.config.train_config import load_config
from realnet.data.datasets import dataset_spec
from realnet.methods.ema import momentum_at
from realnet.training.optim import lr_at
from realnet.training.checkpoint import CHECKPOINT
from realnet.data.pools import load_run_data
from realnet.training.runtime import resolve_runtime
from realnet.data.pools import BatchOrder
from realnet.training.step import TrainStep, build_train_step
from realnet.training.trainer import train

TINY = ["train.batch_size=32", "model.width=0.0625", "model.proj_hidden_dim=32",
        "model.proj_dim=8", "eval.knn_k=10", "eval.probe_epochs=2", "data.train_limit=200",
        "data.test_limit=60", "log.probe_size=32", "log.checkpoint_every=0"]


@pytest.fixture(autouse=True)
def one_thread():
    """These tests check numbers and shapes, not speed; on a shared 2-core machine two intra-op
    threads spin against other processes and make a tiny step 5-10x slower. Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- FLOPs
def test_flop_count_of_a_linear_layer_and_a_conv_is_2mnk():
    m, k, n = 7, 5, 3
    lin = nn.Linear(k, n)
    x = torch.randn(m, k, requires_grad=True)
    assert bench.count_flops(lambda: lin(x)) == 2 * m * n * k
    # backward: grad of the input (m x n @ n x k) and of the weight (n x m @ m x k), 2mnk each
    assert bench.count_flops(lambda: lin(x).sum().backward()) == 3 * 2 * m * n * k
    b, cin, cout, hw = 2, 3, 4, 6
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    assert bench.count_flops(lambda: conv(torch.randn(b, cin, hw, hw))) == \
        2 * b * cout * hw * hw * cin * 9


def _resnet18_cifar_forward_flops(size: int, width: int = 64) -> int:
    """Hand count of the CIFAR-stem ResNet-18 trunk + 512-512-128 projector, per image."""
    def conv(cin, cout, k, hw):
        return 2 * cin * cout * k * k * hw * hw

    c, hw = width, size
    total = conv(3, c, 3, hw)  # stem: 3x3 stride 1, no max-pool
    cin = c
    for stage in range(4):
        cout = c * 2**stage
        if stage > 0:
            hw //= 2
        total += conv(cin, cout, 3, hw) + conv(cout, cout, 3, hw)  # block 1
        if cin != cout:
            total += conv(cin, cout, 1, hw)  # 1x1 downsample
        total += 2 * conv(cout, cout, 3, hw)  # block 2
        cin = cout
    return total + 2 * (8 * c * 512 + 512 * 128)  # projector


def test_training_step_flops_of_resnet18_match_a_hand_count():
    cfg = load_config(None, ["device=cpu"])  # BYOL, ResNet-18 CIFAR stem, DirectPred d=128
    enc = _resnet18_cifar_forward_flops(32)
    assert enc == pytest.approx(1.11e9, rel=0.01)  # the published 0.56 GMACs of CIFAR R18
    stem = 2 * 3 * 64 * 9 * 32 * 32
    d = 128
    # Per image: 2 views x (online forward + backward = 3 forwards, minus the stem's input
    # gradient, which autograd skips) + 2 target forwards + the predictor on 2 views (forward
    # and the input gradient; DirectPred's Wp set every step takes no weight gradient).
    expected = 2 * (3 * enc - stem) + 2 * enc + 2 * (2 * d * d + 2 * d * d)
    # Integer counts of the same layers: equal exactly.
    assert bench.step_flops_per_image(cfg) == expected
    assert bench.step_flops_per_image(cfg, n=4) == expected  # linear in the batch


# ------------------------------------------------------------------------------- baseline
def test_baseline_loader_yields_two_independent_normalised_views():
    spec = dataset_spec("cifar10")
    x = torch.randint(0, 256, (24, 3, 12, 12), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    # The recipe: shapes, dtype, and two views that differ (independent random crops of 12 px
    # images coincide with probability far below 1/24 per image).
    loader = conventional_loader(x, AugmentConfig(), spec, 8, out_size=10, workers=0)
    batches = list(loader)
    assert len(batches) == 3  # 24 images, batch 8, last partial batch dropped (none here)
    v1, v2 = batches[0]
    assert v1.shape == v2.shape == (8, 3, 10, 10) and v1.dtype == torch.float32
    assert all(not torch.equal(a, b) for a, b in zip(v1, v2))
    # Identity augmentation (full-image crop at the same size, no flip/jitter/grayscale): both
    # views equal (x / 255 - mean) / std of some image of the set; float32 arithmetic of the
    # same formula, so 1e-6 of the ~2 range covers the rounding.
    ident = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0,
                          jitter_p=0.0, grayscale_p=0.0)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    ref = (x.float() / 255 - mean) / std
    for api in ("v1", "v2"):
        a, b = next(iter(conventional_loader(x, ident, spec, 8, out_size=12, workers=0,
                                             api=api)))
        assert torch.equal(a, b)
        err = (a[:, None] - ref[None]).abs().amax(dim=(2, 3, 4)).min(dim=1).values
        assert err.max().item() < 1e-6, api
    # grayscale data: one channel
    digits = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    g1, _ = next(iter(conventional_loader(digits, load_config("digits").augment_config(),
                                          dataset_spec("digits"), 4, out_size=8, workers=0)))
    assert g1.shape == (4, 1, 8, 8)


def test_baseline_loader_refuses_bad_arguments():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    spec = dataset_spec("cifar10")
    with pytest.raises(ValueError, match="batch_size"):
        conventional_loader(x, AugmentConfig(), spec, 5, workers=0)
    with pytest.raises(ValueError, match="workers"):
        conventional_loader(x, AugmentConfig(), spec, 2, workers=-1)
    with pytest.raises(ValueError, match="api"):
        conventional_loader(x, AugmentConfig(), spec, 2, workers=0, api="v3")


# -------------------------------------------------------------------- the shared train step
def test_train_runs_the_public_train_step(tmp_path, monkeypatch):
    calls = []
    real = TrainStep.__call__

    def spy(self, *a, **kw):
        calls.append(a[1])  # the step index k
        return real(self, *a, **kw)

    monkeypatch.setattr(TrainStep, "__call__", spy)
    cfg = load_config("digits", TINY + ["train.steps=2", "log.spectra_every=0",
                                        "eval.linear_probe=false"])
    train(cfg, tmp_path, quiet=True)
    assert calls == [0, 1]


def test_one_public_step_equals_one_step_of_train_bitwise(tmp_path):
    cfg = load_config("digits", TINY + ["train.steps=1", "eval.linear_probe=false"])
    train(cfg, tmp_path, quiet=True)
    ref = torch.load(tmp_path / CHECKPOINT, weights_only=True)

    rt = resolve_runtime(cfg)
    data = load_run_data(cfg.data, cfg.train.batch_size, rt.device)
    step = build_train_step(cfg, data.spec, rt)
    order = BatchOrder(len(data.ssl), cfg.train.batch_size, cfg.seed)
    loss = step(data.ssl.batch(order, 0), 0, lr_at(0, 1, cfg.optim),
                momentum_at(0, 1, cfg.method.ema, cfg.method.ema_schedule))
    assert math.isfinite(loss.item())
    got = step.model.state_dict()
    assert got.keys() == ref["model"].keys()
    # Same seed, same CPU, same operations: every weight, buffer (F, BN statistics, EMA target)
    # and momentum buffer must agree to the bit.
    assert all(torch.equal(got[k], ref["model"][k]) for k in got)
    opt = step.optimizer.state_dict()["state"]
    assert all(torch.equal(opt[i]["momentum_buffer"], s["momentum_buffer"])
               for i, s in ref["optimizer"]["state"].items())
    logged = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert logged["step"] == 1 and logged["loss"] == loss.item()


# ---------------------------------------------------------------------------- the bench CLI
def test_bench_tiny_on_cpu_prints_the_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--tiny", "--device", "cpu", "--predictors", "directpred", "linear",
                     "--no-stl", "--baseline", "first", "--aug-batch", "8", "--aug-reps", "1",
                     "--peak-tflops", "1", "--bf16", "off", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    for header in ("pipeline", "method", "predictor", "input", "stem", "batch", "dtype",
                   "chan_last", "compile", "img/s", "s/50k-epoch", "x FLOP floor", "speed-up",
                   "peak mem GiB", "syncs/step", "GPUAugment batch", "transforms.v2 per image",
                   "eigh of F + setting Wp"):
        assert header in text, header
    assert "compile: requested but off" in text  # nothing switched off silently
    res = json.loads(out.read_text())
    rows = res["rows"]
    assert [(r["pipeline"], r["predictor"]) for r in rows] == [
        ("on-device", "directpred"), ("conventional", "directpred"), ("on-device", "linear")]
    dp, base, lin = rows
    # Derived columns, recomputed from the raw measurements (float rounding only: 1e-9).
    for r in rows:
        assert r["images_per_s"] == pytest.approx(r["steps"] * 16 / r["seconds"], rel=1e-9)
        assert r["epoch_s"] == pytest.approx(50_000 / r["images_per_s"], rel=1e-9)
        assert r["x_floor"] == pytest.approx(1e12 / (r["images_per_s"] * r["flops_per_image"]),
                                             rel=1e-9)
        assert r["peak_mem_gib"] is None and r["host_syncs"] is None  # CUDA-only columns
        assert r["dtype"] == "fp32" and r["compile"] == "false"
    assert dp["speedup"] == pytest.approx(dp["images_per_s"] / base["images_per_s"], rel=1e-9)
    assert lin["speedup"] is None  # --baseline first: no baseline of its own, shown as '-'
    assert dp["flops_per_image"] == base["flops_per_image"] > 0
    assert res["directpred_overhead"]["set_s"] > 0 and res["directpred_overhead"]["observe_s"] > 0
    assert {r["pipeline"].split(" (")[0] for r in res["augment"]} == {
        "GPUAugment batch", "transforms.v2 per image", "transforms v1 per image"}


@pytest.mark.parametrize("argv, key", [(["--batch", "0"], "--batch"), (["--width", "0"], "--width"),
                                       (["--batch", "8", "--pool", "4"], "--pool")])
def test_bench_refuses_bad_sizes(argv, key, capsys):
    assert bench.main(["--device", "cpu", *argv]) == 2
    assert key in capsys.readouterr().err


# ------------------------------------------------------------------------------ numerics
def test_agreement_rule_against_hand_numbers():
    same = numerics.agreement([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])  # sd 1 each, diff -0.5
    assert same["diff"] == pytest.approx(-0.5) and same["pooled_sd"] == pytest.approx(1.0)
    assert same["same"]
    far = numerics.agreement([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])  # diff -4 = 4 sd
    assert far["ratio"] == pytest.approx(4.0) and not far["same"]
    assert numerics.agreement([2.0, 2.0], [2.0, 2.0])["same"]  # no spread, no difference
    assert not numerics.agreement([2.0, 2.0], [3.0, 3.0])["same"]  # no spread, a difference
    with pytest.raises(ValueError, match="seeds"):
        numerics.agreement([1.0, 2.0], [1.0, 2.0, 3.0])


def test_numerics_smoke_on_digits(capsys, tmp_path):
    """Two numerics paths, two seeds, a tiny run each: the table printed is the JSON's per-seed
    numbers, and each verdict is the rule applied to them (difference of the means, pooled seed
    std with ddof 1, same iff |diff| / std <= 2)."""
    assert numerics.main(["--tiny", "--steps", "3", "--json", str(tmp_path / "n.json")]) == 0
    text = capsys.readouterr().out
    rows = [ln.split() for ln in text.splitlines() if ln.startswith(("fast ", "plain "))
            and "mean" not in ln]
    assert [(r[0], r[1]) for r in rows] == [("fast", "0"), ("fast", "1"), ("plain", "0"),
                                            ("plain", "1")]
    res = json.loads((tmp_path / "n.json").read_text())
    for r in rows:
        got = res["results"][r[0]][r[1]]
        assert float(r[2]) == pytest.approx(got["knn_top1"], abs=0.005)
        assert float(r[3]) == pytest.approx(got["effective_rank"], abs=0.005)
    for metric, ag in res["agreement"].items():
        f = np.array([res["results"]["fast"][s][metric] for s in ("0", "1")])
        p = np.array([res["results"]["plain"][s][metric] for s in ("0", "1")])
        sd = np.sqrt((f.var(ddof=1) + p.var(ddof=1)) / 2)
        assert ag["diff"] == pytest.approx(f.mean() - p.mean(), rel=1e-12, abs=1e-12)
        assert ag["pooled_sd"] == pytest.approx(sd, rel=1e-9)
        assert ag["same"] == (abs(ag["diff"]) <= 2 * sd)
        assert f"{metric}: fast - plain = {ag['diff']:+.3f}" in text


@pytest.mark.gpu
@pytest.mark.slow
def test_bench_on_cuda_uses_the_fast_path_and_reports_memory(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--device", "cuda", "--batch", "64", "--width", "0.25", "--steps", "3",
                     "--warmup", "3", "--pool", "1024", "--predictors", "directpred", "--no-stl",
                     "--baseline", "first", "--workers", "2", "--no-aug", "--json", str(out)])
    assert rc == 0
    fast, base = json.loads(out.read_text())["rows"]
    assert (fast["dtype"], fast["channels_last"], fast["compile"]) == ("bf16", "true", "true")
    assert (base["dtype"], base["channels_last"], base["compile"]) == ("fp32", "false", "false")
    assert fast["peak_mem_gib"] > 0 and base["peak_mem_gib"] > 0
    assert isinstance(fast["host_syncs"], int) and fast["host_syncs"] >= 0
    assert fast["speedup"] == pytest.approx(fast["images_per_s"] / base["images_per_s"])


def test_gpu_check_reads_its_targets_off_a_bench_result():
    from realnet.tools import gpucheck

    bench_json = {"rows": [
        {"pipeline": "on-device", "predictor": "directpred", "input": "cifar10 32x32",
         "epoch_s": 2.5, "speedup": 6.0},
        {"pipeline": "on-device", "predictor": "directpred", "input": "stl10 96x96",
         "epoch_s": 30.0, "speedup": float("nan")}],
        "directpred_overhead": {"set_s": 0.001, "step_s": 0.05}}
    t = gpucheck.targets(bench_json)
    assert t["epoch_s"] == 2.5 and t["epoch_ok"] and t["speedup_ok"]
    assert t["directpred_overhead"] == pytest.approx(0.02) and t["directpred_overhead_ok"]
    bench_json["rows"][0].update(epoch_s=3.5, speedup=float("nan"))
    bench_json["directpred_overhead"]["set_s"] = 0.003
    t = gpucheck.targets(bench_json)
    assert not t["epoch_ok"] and t["speedup"] is None and not t["speedup_ok"]
    assert not t["directpred_overhead_ok"]


def test_cpu_bench_table_side_by_side(tmp_path, capsys):
    from realnet.tools import cpubench

    out = tmp_path / "cpu.json"
    rc = cpubench.main(["--config", "digits", "--steps", "2", "--rounds", "1", "--warmup", "1",
                        "--matmul-n", "64", "--threads", "1", "--json", str(out),
                        "train.batch_size=16", "model.width=0.125", "model.proj_hidden_dim=16",
                        "model.proj_dim=8"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "of peak" in text and "bf16" in text and "fp32" in text
    result = json.loads(out.read_text())
    rows = result["rows"]
    bf16 = "bf16" if result["bf16_native"] else "bf16 (emulated)"
    assert [(r["dtype"], r["layout"], r["threads"]) for r in rows] == [
        ("fp32", "contiguous", 1), ("fp32", "channels_last", 1), (bf16, "channels_last", 1)]
    for r in rows:  # derived columns recomputed from the raw ones; no bf16 "peak" when emulated
        if r["matmul_peak_gflops"] is None:
            assert r["dtype"] == "bf16 (emulated)" and r["peak_fraction"] is None
        else:
            assert r["peak_fraction"] == pytest.approx(r["step_gflops"] / r["matmul_peak_gflops"],
                                                       rel=1e-9)
    assert rows[0]["speedup"] == pytest.approx(1.0)
    assert rows[1]["speedup"] == pytest.approx(rows[1]["images_per_s"] / rows[0]["images_per_s"])
    assert cpubench.main(["--threads", "0"]) == 2
