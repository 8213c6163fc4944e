"""Training speed: ``python -m realnet.tools.bench``.

Times the trainer's own step (:class:`realnet.training.step.TrainStep`: on-device augmentation of uint8
batches, forward of both views, loss, backward, predictor observe, optimiser step, predictor
setting, EMA) on random uint8 images resident on the device, against the conventional pipeline of
public BYOL code measured in the same process (:mod:`realnet.tools.baseline`: DataLoader workers with
per-image torchvision transforms, fp32, eager), and prints one table:

- configuration: method, predictor, input size, stem, width, batch, dtype, channels_last, compile;
- images/s and the time of a 50,000-image epoch (CIFAR-10's training set; warm-up steps excluded,
  CUDA timed with events after a synchronisation);
- multiple of the FLOP floor: ``(1 / images_per_s) / (flops_per_image / peak)``, where
  ``flops_per_image`` is the matmul/convolution FLOPs of one training step per image -- online
  forward and backward of both views plus the target forward of both views plus the predictor --
  counted by :class:`torch.utils.flop_counter.FlopCounterMode` on the run's model at its size (on
  the meta device, so no compute), and ``peak`` the dense bf16 tensor peak (790 TFLOP/s for an
  H100/H200 by default, ``--peak-tflops`` elsewhere; n/a when unknown, e.g. on CPU);
- speed-up: the row's images/s over the conventional baseline's with the same model, batch and
  predictor;
- peak device memory (``torch.cuda.max_memory_allocated``, including the resident image pool).

Below it: DirectPred's extra cost as a share of its step (the correlation update, which every
predictor does, and the eigendecomposition + setting of ``Wp``, timed alone; and the step time of
DirectPred against the linear predictor), and the augmentation throughput of the batched
:class:`realnet.data.augment.GPUAugment` against torchvision's per-image transforms (one view per
image, one process).

``--cpu`` switches to the CPU table of :mod:`realnet.tools.cpubench` (fp32 vs bf16, 1 vs 2 threads).

Nothing is switched off silently: every requested setting that does not apply (``torch.compile``
on CPU, an unknown peak) is listed in the notes under the table with the reason.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from analysis.jsonio import json_ready as _plain

from .augbench import AUG_COLUMNS, augment_throughput
from .benchutil import (Column, _num, check_losses, count_flops, directpred_overhead, format_table,
                        host_syncs, peak_memory, random_images, reset_memory, run_steps,
                        step_flops_per_image)
from .baseline import conventional_loader, default_workers
from realnet.config.train_config import TrainConfig, load_config
from realnet.data.datasets import dataset_spec
from realnet.methods.ema import momentum_at
from realnet.training.optim import lr_at
from realnet.training.runtime import Runtime, resolve_runtime
from realnet.data.pools import BatchOrder
from realnet.training.step import build_train_step
from analysis.errors import ConfigError

__all__ = [
    "EPOCH_IMAGES",
    "PEAK_BF16_FLOPS",
    "BenchCase",
    "Timing",
    "count_flops",
    "step_flops_per_image",
    "bench_config",
    "host_syncs",
    "time_train_step",
    "time_baseline",
    "augment_throughput",
    "format_table",
    "main",
]

#: Images of the epoch the "s / epoch" column refers to (CIFAR-10's training set).
EPOCH_IMAGES = 50_000
#: Dense bf16 tensor-core peak used for the FLOP floor, by device-name fragment (the figure the
#: speed target was set against; H200 has the same GH100 tensor cores as the H100).
PEAK_BF16_FLOPS: dict[str, float] = {"H100": 790e12, "H200": 790e12}
_PREDICTORS = ("directpred", "directcopy", "linear", "mlp", "optimal")




# ---------------------------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchCase:
    """One row: BYOL/SimSiam with a predictor on ``dataset``-shaped input of ``size`` px."""

    method: str
    predictor: str
    dataset: str
    size: int
    stem: str
    width: float
    batch: int


def bench_config(case: BenchCase, *, device: str, bf16: bool | None, channels_last: bool | None,
                 compile: bool, seed: int = 0) -> TrainConfig:
    """The :class:`TrainConfig` of a row (the paper's recipe with the row's overrides; DirectPred
    and DirectCopy set ``Wp`` every step). Validated."""
    tri = {None: "auto", True: "true", False: "false"}
    return load_config(None, [
        f"seed={seed}", f"device={device}", f"data.dataset={case.dataset}",
        f"data.image_size={case.size}", f"model.stem={case.stem}", f"model.width={case.width}",
        f"method.name={case.method}", f"predictor.name={case.predictor}",
        f"train.batch_size={case.batch}", "train.steps=1000000", f"train.bf16={tri[bf16]}",
        f"train.channels_last={tri[channels_last]}", f"train.compile={str(compile).lower()}"])


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """``steps`` timed steps of ``batch`` images in ``seconds``; ``peak_memory`` in bytes and
    ``syncs`` (:func:`host_syncs` of one step) None off CUDA."""

    steps: int
    batch: int
    seconds: float
    peak_memory: int | None = None
    syncs: tuple[int, list[str]] | None = None  # host syncs of one step (CUDA), see host_syncs
    runtime: Runtime | None = None  # the numerics the step ran with (channels_last settled)

    @property
    def images_per_s(self) -> float:
        return self.steps * self.batch / self.seconds


def time_train_step(cfg: TrainConfig, *, warmup: int, steps: int, pool: int) -> Timing:
    """Time the trainer's :class:`realnet.training.step.TrainStep` for ``cfg`` (its runtime flags
    resolved as the trainer does; compiled when they say so) on ``pool`` random uint8 images
    resident on the device, drawn batch by batch as the trainer does (:meth:`BatchOrder.batch`),
    lr and EMA momentum from the schedules. ``warmup`` steps are excluded; on CUDA one more,
    untimed step counts the host syncs (:func:`host_syncs`)."""
    rt = resolve_runtime(cfg)
    spec = dataset_spec(cfg.data.dataset)
    size = cfg.data.image_size or spec.image_size
    reset_memory(rt.device)
    images = random_images(pool, spec.channels, size, cfg.seed, rt.device)
    order = BatchOrder(pool, cfg.train.batch_size, cfg.seed)
    train_step = build_train_step(cfg, spec, rt)
    if rt.compile:
        train_step.model.compile_encoders()
    total = warmup + steps + 1  # the schedules' length: the last step counts the host syncs
    losses: list[torch.Tensor] = []

    def one(k: int) -> None:
        train_step(order.batch(images, k), k, lr_at(k, total, cfg.optim),
                   momentum_at(k, total, cfg.method.ema, cfg.method.ema_schedule), losses)

    seconds = run_steps(one, rt.device, warmup, steps)
    check_losses(losses, f"{cfg.method.name}/{cfg.predictor.name}")
    timing = Timing(steps, cfg.train.batch_size, seconds, peak_memory(rt.device),
                    runtime=train_step.runtime)
    timing.syncs = host_syncs(lambda: one(total - 1), rt.device)  # one more, untimed step
    del train_step, images
    return timing


def time_baseline(cfg: TrainConfig, *, warmup: int, steps: int, workers: int,
                  prefetch_factor: int = 2, api: str = "v1") -> Timing:
    """Time the conventional pipeline (:mod:`realnet.tools.baseline`) for ``cfg``'s model, batch and
    predictor: fp32, eager, no channels_last; views from a DataLoader with ``workers`` processes
    (pinned memory and non-blocking copies on CUDA) fed to the trainer's
    :meth:`realnet.training.step.TrainStep.update`. The warm-up also drains the ``workers * prefetch_factor`` batches
    the loader queues ahead during the first steps, so the timed steps run at the loader's
    steady rate."""
    rt0 = resolve_runtime(cfg)
    rt = Runtime(rt0.device, bf16=False, channels_last=False, compile=False)
    spec = dataset_spec(cfg.data.dataset)
    size = cfg.data.image_size or spec.image_size
    cuda = rt.device.type == "cuda"
    warmup = warmup + workers * prefetch_factor
    total = warmup + steps
    reset_memory(rt.device)
    images = random_images(total * cfg.train.batch_size, spec.channels, size, cfg.seed)
    loader = conventional_loader(images, cfg.augment_config(), spec, cfg.train.batch_size,
                                 out_size=size, workers=workers, pin_memory=cuda, seed=cfg.seed,
                                 api=api, prefetch_factor=prefetch_factor)
    train_step = build_train_step(cfg, spec, rt)
    batches = iter(loader)
    losses: list[torch.Tensor] = []

    def one(k: int) -> None:
        x1, x2 = next(batches)
        train_step.update(x1.to(rt.device, non_blocking=cuda), x2.to(rt.device, non_blocking=cuda),
                          k, lr_at(k, total, cfg.optim),
                          momentum_at(k, total, cfg.method.ema, cfg.method.ema_schedule), losses)

    try:
        seconds = run_steps(one, rt.device, warmup, steps)
    finally:
        del batches, loader
    check_losses(losses, f"baseline {cfg.method.name}/{cfg.predictor.name}")
    return Timing(steps, cfg.train.batch_size, seconds, peak_memory(rt.device))


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
MAIN_COLUMNS: list[Column] = [
    ("pipeline", "pipeline", str), ("method", "method", str), ("predictor", "predictor", str),
    ("input", "input", str), ("stem", "stem", str), ("width", "width", _num("g")),
    ("batch", "batch", _num("d")), ("dtype", "dtype", str),
    ("channels_last", "chan_last", str), ("compile", "compile", str),
    ("images_per_s", "img/s", _num(",.0f")), ("epoch_s", "s/50k-epoch", _num(".2f")),
    ("x_floor", "x FLOP floor", _num(".1f")), ("speedup", "speed-up", _num(".2f")),
    ("peak_mem_gib", "peak mem GiB", _num(".2f")), ("host_syncs", "syncs/step", _num("d")),
]


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
_TRI = {"auto": None, "on": True, "off": False}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realnet.tools.bench",
                                description=" ".join(__doc__.strip().split("\n\n")[0].split()).replace("``", ""))
    p.add_argument("--cpu", action="store_true", help="the CPU table instead (realnet.tools.cpubench: "
                   "fp32 / channels_last / bf16 x threads; its own options follow)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--tiny", action="store_true",
                   help="smoke size: width 0.0625, batch 16, 16 px (STL row 32 px), 2 steps")
    p.add_argument("--batch", type=int, help="batch size (default 512 on CUDA, 64 on CPU)")
    p.add_argument("--width", type=float, help="ResNet-18 width multiplier of the CIFAR rows "
                   "(default 1 on CUDA, 0.125 on CPU)")
    p.add_argument("--size", type=int, default=None, help="CIFAR-row input px (default 32)")
    p.add_argument("--stl-size", type=int, default=None, help="STL-row input px (default 96)")
    p.add_argument("--stl-width", type=float, default=None,
                   help="width of the STL row (default: --width)")
    p.add_argument("--no-stl", action="store_true", help="leave out the STL-10-shaped row")
    p.add_argument("--method", default="byol", choices=("byol", "simsiam"))
    p.add_argument("--predictors", nargs="+", default=list(_PREDICTORS),
                   choices=_PREDICTORS, metavar="NAME",
                   help=f"predictors of the CIFAR rows (default: {' '.join(_PREDICTORS)})")
    p.add_argument("--steps", type=int, help="timed steps per row (default 50 CUDA, 5 CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 10 CUDA, 2 CPU)")
    p.add_argument("--pool", type=int, default=None,
                   help="random uint8 images resident on the device (default 50000 on CUDA, "
                   "4 batches on CPU)")
    p.add_argument("--bf16", choices=_TRI, default="auto")
    p.add_argument("--channels-last", choices=_TRI, default="auto")
    p.add_argument("--compile", choices=("on", "off"), default="on",
                   help="torch.compile the encoders (applies on CUDA only)")
    p.add_argument("--baseline", choices=("all", "first", "none"), default="all",
                   help="measure the conventional pipeline for every row, the first row of "
                   "each input shape, or none")
    p.add_argument("--workers", type=int, default=None,
                   help="baseline DataLoader workers (default: every usable core)")
    p.add_argument("--baseline-steps", type=int, default=None,
                   help="timed baseline steps (default: --steps)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense peak TFLOP/s for the FLOP floor (default 790 on H100/H200 with "
                   "bf16; n/a otherwise)")
    p.add_argument("--aug-batch", type=int, default=None,
                   help="batch of the augmentation table (default: --batch)")
    p.add_argument("--aug-reps", type=int, default=3)
    p.add_argument("--no-aug", action="store_true", help="leave out the augmentation table")
    p.add_argument("--json", default=None, metavar="PATH", help="also write every number here")
    return p


@dataclass
class _Plan:
    device: torch.device
    cases: list[BenchCase]
    steps: int
    warmup: int
    baseline_steps: int
    pool: int
    workers: int
    aug_batch: int
    bf16: bool | None
    channels_last: bool | None
    compile: bool


def _check(name: str, v: Any, lo: float, *, open_lo: bool = False) -> None:
    ok = v is None or (isinstance(v, (int, float)) and (v > lo if open_lo else v >= lo)
                       and math.isfinite(v))
    if not ok:
        raise ConfigError(f"{name}={v!r} is invalid: allowed a number {'>' if open_lo else '>='} "
                         f"{lo:g}")


def _plan(a: argparse.Namespace) -> _Plan:
    device = resolve_runtime(load_config(None, [f"device={a.device}"])).device
    cuda = device.type == "cuda"
    for name in ("batch", "size", "stl_size", "steps", "pool", "baseline_steps", "aug_batch",
                 "aug_reps"):
        _check("--" + name.replace("_", "-"), getattr(a, name), 1)
    for name in ("width", "stl_width", "peak_tflops"):
        _check("--" + name.replace("_", "-"), getattr(a, name), 0, open_lo=True)
    _check("--warmup", a.warmup, 0)
    _check("--workers", a.workers, 0)
    tiny = a.tiny
    batch = a.batch or (16 if tiny else 512 if cuda else 64)
    width = a.width or (0.0625 if tiny else 1.0 if cuda else 0.125)
    size = a.size or (16 if tiny else 32)
    steps = a.steps or (2 if tiny else 50 if cuda else 5)
    warmup = a.warmup if a.warmup is not None else (1 if tiny else 10 if cuda else 2)
    cases = [BenchCase(a.method, p, "cifar10", size, "cifar", width, batch) for p in a.predictors]
    if not a.no_stl:
        cases.append(BenchCase(a.method, "directpred", "stl10", a.stl_size or (32 if tiny else 96),
                               "imagenet", a.stl_width or width, batch))
    workers = a.workers if a.workers is not None else (1 if tiny else default_workers())
    pool = a.pool or (50_000 if cuda else 4 * batch)
    if pool < batch:
        raise ConfigError(f"--pool={pool} is invalid: allowed at least --batch={batch}")
    return _Plan(device, cases, steps, warmup, a.baseline_steps or steps, pool, workers,
                 a.aug_batch or batch, _TRI[a.bf16], _TRI[a.channels_last], a.compile == "on")


def _peak(args: argparse.Namespace, rt: Runtime, notes: list[str]) -> float | None:
    if args.peak_tflops is not None:
        return args.peak_tflops * 1e12
    if rt.device.type != "cuda":
        notes.append("x FLOP floor: n/a on CPU (no tensor-core peak); pass --peak-tflops to set "
                     "one")
        return None
    name = torch.cuda.get_device_name(rt.device)
    hit = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    if hit is None or not rt.bf16:
        why = "bf16 is off" if hit is not None else f"no known peak for {name!r}"
        notes.append(f"x FLOP floor: n/a ({why}); pass --peak-tflops to set one")
        return None
    notes.append(f"x FLOP floor: against the dense bf16 peak {hit / 1e12:.0f} TFLOP/s of "
                 f"{name} (baseline rows too: how far each is from the hardware's best)")
    return hit


def _row(pipeline: str, case: BenchCase, rt: Runtime, timing: Timing, flops: float,
         peak: float | None) -> dict[str, Any]:
    rt = timing.runtime or rt
    ips = timing.images_per_s
    return {
        "pipeline": pipeline, "method": case.method, "predictor": case.predictor,
        "input": f"{case.dataset} {case.size}x{case.size}", "stem": case.stem,
        "width": case.width, "batch": case.batch,
        "dtype": "bf16" if rt.bf16 else "fp32", "channels_last": str(rt.channels_last).lower(),
        "compile": str(rt.compile).lower(), "images_per_s": ips,
        "epoch_s": EPOCH_IMAGES / ips, "flops_per_image": flops,
        "x_floor": None if peak is None else peak / (ips * flops),
        "speedup": float("nan"),
        "peak_mem_gib": None if timing.peak_memory is None else timing.peak_memory / 2**30,
        "host_syncs": None if timing.syncs is None else timing.syncs[0],
        "host_sync_sources": None if timing.syncs is None else timing.syncs[1],
        "seconds": timing.seconds, "steps": timing.steps,
    }


def _runtime_notes(plan: _Plan, rt: Runtime, notes: list[str]) -> None:
    if plan.compile and not rt.compile:
        notes.append("compile: requested but off -- realnet.training.trainer applies torch.compile only on "
                     "CUDA (resolve_runtime); on CPU the encoders run eagerly")
    if plan.bf16 is None and not rt.bf16:
        notes.append("dtype: fp32 -- bf16 autocast is on by default only on CUDA and on CPUs "
                     "with native bf16 (--bf16 on to force it here)")
    if plan.channels_last is None and not rt.channels_last:
        notes.append("channels_last: off -- on by default only on CUDA and on CPUs with native "
                     "bf16 (--channels-last on to force it here)")
    if rt.device.type != "cuda":
        notes.append("peak mem, syncs/step: n/a off CUDA")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--cpu" in argv:  # the CPU table: dtype x threads (realnet.tools.cpubench)
        from . import cpubench

        argv.remove("--cpu")
        return cpubench.main(argv)
    args = _parser().parse_args(argv)
    try:
        plan = _plan(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    notes: list[str] = []
    dev = plan.device
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"realnet.tools.bench: device {dev} ({name}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, {plan.steps} timed steps after {plan.warmup} "
          f"warm-up, baseline: {plan.workers} DataLoader workers, pool {plan.pool} images",
          flush=True)
    rows: list[dict[str, Any]] = []
    baseline_done: set[tuple[str, int]] = set()
    peak: float | None = None
    by_pred: dict[str, float] = {}
    for i, case in enumerate(plan.cases):
        cfg = bench_config(case, device=str(dev), bf16=plan.bf16,
                           channels_last=plan.channels_last, compile=plan.compile)
        rt = resolve_runtime(cfg)
        if i == 0:
            _runtime_notes(plan, rt, notes)
            peak = _peak(args, rt, notes)
        flops = step_flops_per_image(cfg)
        print(f"  timing {case.predictor} {case.dataset} {case.size}px ...", flush=True)
        fast = _row("on-device", case, rt, time_train_step(cfg, warmup=plan.warmup,
                                                           steps=plan.steps, pool=plan.pool),
                    flops, peak)
        rows.append(fast)
        if case.dataset == "cifar10":
            by_pred[case.predictor] = fast["seconds"] / fast["steps"]
        shape = (case.dataset, case.size)
        want = args.baseline == "all" or (args.baseline == "first" and shape not in baseline_done)
        if want:
            print(f"  timing the conventional baseline ({plan.workers} workers) ...", flush=True)
            base = time_baseline(cfg, warmup=plan.warmup, steps=plan.baseline_steps,
                                 workers=plan.workers)
            brt = Runtime(rt.device, False, False, False)
            brow = _row("conventional", case, brt, base, flops, peak)
            fast["speedup"] = fast["images_per_s"] / brow["images_per_s"]
            rows.append(brow)
            baseline_done.add(shape)
    print()
    print(format_table(rows, MAIN_COLUMNS))
    print("\ns/50k-epoch = 50,000 / img/s. on-device: the trainer's TrainStep on uint8 images "
          "resident on the device. conventional: DataLoader workers with per-image torchvision "
          "transforms (v1, PIL), pinned memory, fp32, eager. speed-up = on-device img/s / "
          "conventional img/s of the same model, batch and predictor, measured in this run.")
    for n in notes:
        print(f"note: {n}")
    sources = sorted({src for r in rows for src in (r.get("host_sync_sources") or [])})
    if sources:
        print("syncs/step: host-device synchronisations in one on-device step, at: "
              + ", ".join(sources))

    overhead: dict[str, Any] = {}
    dp = next((c for c in plan.cases if c.predictor == "directpred"), None)
    if dp is not None:
        cfg = bench_config(dp, device=str(dev), bf16=plan.bf16, channels_last=plan.channels_last,
                           compile=plan.compile)
        overhead = directpred_overhead(cfg)
        step_s = next(r["seconds"] / r["steps"] for r in rows
                      if r["pipeline"] == "on-device" and r["predictor"] == "directpred")
        overhead["step_s"] = step_s
        print(f"\nDirectPred's own work per step ({dp.dataset} {dp.size}px, batch {dp.batch}, "
              f"d={cfg.model.proj_dim}), timed alone:")
        print(f"  correlation update F (observe; every predictor does it): "
              f"{overhead['observe_s'] * 1e3:.3f} ms = {100 * overhead['observe_s'] / step_s:.2f} "
              "% of the DirectPred step")
        print(f"  eigh of F + setting Wp (DirectPred only):                "
              f"{overhead['set_s'] * 1e3:.3f} ms = {100 * overhead['set_s'] / step_s:.2f} % of "
              "the DirectPred step")
        if "linear" in by_pred and "directpred" in by_pred:
            diff = by_pred["directpred"] - by_pred["linear"]
            overhead["directpred_minus_linear_s"] = diff
            print(f"  step time DirectPred - linear (SGD-trained Wp):       {diff * 1e3:+.3f} ms "
                  f"= {100 * diff / by_pred['directpred']:+.2f} % of the DirectPred step "
                  f"(step-to-step noise included)")

    aug_rows: list[dict[str, Any]] = []
    if not args.no_aug:
        devices = ["cpu"] + (["cuda"] if dev.type == "cuda" else [])
        shapes = {(c.dataset, c.size) for c in plan.cases}
        print("\nAugmentation throughput (random uint8 images, the recipe of each dataset):",
              flush=True)
        for dataset, size in sorted(shapes):
            part = augment_throughput(dataset, size, plan.aug_batch, reps=args.aug_reps,
                                      devices=devices)
            ref = next(r["images_per_s"] for r in part if r["pipeline"].startswith("transforms.v2"))
            for r in part:
                r["vs_v2"] = r["images_per_s"] / ref
            aug_rows += part
        print(format_table(aug_rows, AUG_COLUMNS))
    if args.json:
        plan_d = {k: v for k, v in asdict(plan).items() if k != "cases"}
        with open(args.json, "w") as fh:
            json.dump(_plain({"device": str(dev), "device_name": name, "torch": torch.__version__,
                              "plan": plan_d, "rows": rows, "directpred_overhead": overhead,
                              "augment": aug_rows, "notes": notes}), fh, indent=2)
    return 0



if __name__ == "__main__":
    sys.exit(main())
