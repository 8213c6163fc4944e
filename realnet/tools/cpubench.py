"""CPU training speed: ``python -m realnet.tools.bench --cpu``.

Times the trainer's own step (:class:`realnet.training.step.TrainStep`) for a shipped config (default: the
Fashion-MNIST CPU recipe) on random uint8 images, side by side in one process, for every
combination of numerics (fp32 contiguous, fp32 channels_last, bf16 autocast + channels_last) and
intra-op threads (1 and 2 by default), so the table shows which part of the fast path pays. Configurations run interleaved, ``--rounds`` rounds of ``--steps`` steps each, so a load
that comes and goes on a shared machine hits them alike. Each step is timed alone; the table gives
the median images/s, its 10-90 % range over steps (two threads on a busy 2-core machine show up as
a wide range), the speed-up over fp32 on one thread, and the fraction of the machine's measured
matmul peak reached: the step's convolution/matmul FLOPs per second (counted by
:func:`realnet.tools.benchutil.step_flops_per_image`) over the best ``n x n`` matmul rate of the same dtype at
the same thread count (``--matmul-n``, measured here, not a datasheet figure). On a CPU without
native bf16 (no AMX or AVX512-BF16: :func:`realnet.training.runtime.cpu_has_native_bf16`) bf16 is emulated:
its rows are marked so and get no fraction of a bf16 "peak" (an emulated matmul is no peak).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from analysis.jsonio import json_ready

from .benchutil import _num, format_table, random_images, step_flops_per_image
from realnet.config.train_config import load_config
from realnet.data.datasets import dataset_spec
from realnet.methods.ema import momentum_at
from realnet.training.optim import lr_at
from realnet.training.runtime import cpu_has_native_bf16, cpu_model, resolve_runtime
from realnet.data.pools import BatchOrder
from realnet.training.step import build_train_step

__all__ = ["matmul_peak", "main"]


def matmul_peak(dtype: torch.dtype, threads: int, *, n: int = 1024, reps: int = 5) -> float:
    """Best FLOP/s of an ``n x n`` by ``n x n`` matmul (``2 n^3`` FLOPs) in ``dtype`` on
    ``threads`` intra-op threads, over ``reps`` timed repetitions after one warm-up."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


@dataclass
class _Case:
    dtype: str
    layout: str
    threads: int
    step: Any
    images: torch.Tensor
    order: BatchOrder
    cfg: Any
    k: int = 0

    def run(self, steps: int, total: int) -> list[float]:
        torch.set_num_threads(self.threads)
        out = []
        for _ in range(steps):
            t = time.perf_counter()
            self.step(self.order.batch(self.images, self.k), self.k,
                      lr_at(self.k % total, total, self.cfg.optim),
                      momentum_at(self.k % total, total, self.cfg.method.ema))
            out.append(time.perf_counter() - t)
            self.k += 1
        return out


#: The numerics compared: (dtype, memory layout).
NUMERICS = (("fp32", "contiguous"), ("fp32", "channels_last"), ("bf16", "channels_last"))


def _cases(config: str, overrides: list[str], threads: Sequence[int]) -> list[_Case]:
    cases = []
    for dtype, layout in NUMERICS:
        cfg = load_config(config, [*overrides, "device=cpu",
                                   f"train.bf16={str(dtype == 'bf16').lower()}",
                                   f"train.channels_last={str(layout == 'channels_last').lower()}"])
        rt = resolve_runtime(cfg)
        spec = dataset_spec(cfg.data.dataset)
        size = cfg.data.image_size or spec.image_size
        pool = 4 * cfg.train.batch_size
        images = random_images(pool, spec.channels, size, cfg.seed)
        for t in threads:
            step = build_train_step(cfg, spec, rt)
            cases.append(_Case(dtype, layout, t, step, images,
                               BatchOrder(pool, cfg.train.batch_size, 0), cfg))
    return cases


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realnet.tools.bench --cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="fmnist_directpred", help="shipped config or TOML path")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--matmul-n", type=int, default=1024)
    p.add_argument("--json", default=None, metavar="PATH", help="also write every number here")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    for name in ("steps", "rounds", "matmul_n"):
        if getattr(a, name) < 1:
            print(f"error: --{name.replace('_', '-')}={getattr(a, name)} is invalid: allowed >= 1",
                  file=sys.stderr)
            return 2
    try:
        a.threads = [int(t) for t in a.threads.split(",")]
        if any(t < 1 for t in a.threads):
            raise ValueError
    except ValueError:
        print(f"error: --threads={a.threads!r} is invalid: allowed comma-separated integers >= 1",
              file=sys.stderr)
        return 2
    try:
        cases = _cases(a.config, a.overrides, a.threads)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    flops = step_flops_per_image(cases[0].cfg)
    total = a.warmup + a.rounds * a.steps
    for c in cases:
        c.run(a.warmup, total)
    times: dict[int, list[float]] = {id(c): [] for c in cases}
    for _ in range(a.rounds):
        for c in cases:
            times[id(c)] += c.run(a.steps, total)
    native = cpu_has_native_bf16()
    peaks = {(d, t): matmul_peak(torch.float32 if d == "fp32" else torch.bfloat16, t, n=a.matmul_n)
             for d in ("fp32", "bf16") for t in a.threads if d == "fp32" or native}
    batch = cases[0].cfg.train.batch_size
    rows = []
    for c in cases:
        ips = sorted(batch / s for s in times[id(c)])
        q = statistics.quantiles(ips, n=10) if len(ips) > 1 else [ips[0]] * 9
        med = statistics.median(ips)
        peak = peaks.get((c.dtype, c.threads))
        rows.append({"dtype": c.dtype if c.dtype == "fp32" or native else "bf16 (emulated)",
                     "layout": c.layout, "threads": c.threads, "images_per_s": med,
                     "p10": q[0], "p90": q[-1], "step_gflops": med * flops / 1e9,
                     "matmul_peak_gflops": None if peak is None else peak / 1e9,
                     "peak_fraction": None if peak is None else med * flops / peak})
    base = next(r for r in rows if r["dtype"] == "fp32" and r["layout"] == "contiguous"
                and r["threads"] == min(a.threads))
    for r in rows:
        r["speedup"] = r["images_per_s"] / base["images_per_s"]
    cols = [("dtype", "dtype", str), ("layout", "layout", str), ("threads", "threads", _num("d")),
            ("images_per_s", "img/s (median)", _num(",.0f")), ("p10", "p10", _num(",.0f")),
            ("p90", "p90", _num(",.0f")), ("speedup", f"x fp32/{min(a.threads)}t", _num(".2f")),
            ("step_gflops", "step GFLOP/s", _num(".1f")),
            ("matmul_peak_gflops", "matmul peak GFLOP/s", _num(".1f")),
            ("peak_fraction", "of peak", _num(".1%"))]
    cfg = cases[0].cfg
    print(f"config {a.config}: {cfg.model.arch} width {cfg.model.width}, "
          f"{cfg.data.image_size or dataset_spec(cfg.data.dataset).image_size} px, batch {batch}, "
          f"predictor {cfg.predictor.name}; {flops / 1e6:.1f} MFLOP per image per step; "
          f"{a.rounds} rounds x {a.steps} steps per row, interleaved; CPU "
          f"{cpu_model()}, capability {torch.backends.cpu.get_cpu_capability()}, bf16 "
          f"{'native' if native else 'emulated (no AMX or AVX512-BF16): no bf16 peak to compare'}")
    print(format_table(rows, cols))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(json_ready({"config": a.config, "overrides": a.overrides,
                                  "cpu": cpu_model(), "bf16_native": native,
                                  "flops_per_image": flops, "rows": rows}), fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
