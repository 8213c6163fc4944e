"""Shared by the benchmarks (:mod:`realnet.tools.bench`, :mod:`realnet.tools.cpubench`): FLOPs of a training
step counted on the meta device, a seeded pool of random images, timing (host clock or CUDA events),
peak memory and host-sync counts, and fixed-width text tables."""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any, Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from realnet.config.train_config import TrainConfig
from realnet.data.datasets import dataset_spec
from realnet.methods.losses import LOSSES, ssl_loss
from realnet.methods.predictors import build_predictor
from realnet.nets.ssl_model import build_ssl_model
from realnet.training.runtime import resolve_runtime

__all__ = ["count_flops", "step_flops_per_image", "random_images", "Column", "format_table", "Stopwatch",
           "run_steps", "host_syncs", "reset_memory", "peak_memory", "check_losses", "sync_device",
           "directpred_overhead"]


def count_flops(fn: Callable[[], Any]) -> int:
    """Matmul/convolution FLOPs (a multiply-add counts 2) of everything ``fn`` runs, forward and
    backward, as counted by :class:`torch.utils.flop_counter.FlopCounterMode`."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def step_flops_per_image(cfg: TrainConfig, *, n: int = 2) -> float:
    """FLOPs of one training step per image for ``cfg``'s model at ``cfg.data.image_size`` (or
    the dataset's size): the loss of :func:`realnet.methods.losses.ssl_loss` on two views (online forward
    of both views, predictor, target forward of both views) and its backward, built on the meta
    device (shapes only, nothing computed), divided by the ``n`` images of the batch. The
    counted layers are linear in the batch, so the result does not depend on ``n``."""
    spec = dataset_spec(cfg.data.dataset)
    size = cfg.data.image_size or spec.image_size
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = build_ssl_model(cfg, spec)
        x1 = torch.empty(n, spec.channels, size, size)
        x2 = torch.empty(n, spec.channels, size, size)

    def step() -> None:
        out = ssl_loss(model, x1, x2, LOSSES[cfg.method.loss], stop_grad=cfg.method.stop_grad,
                       symmetric=cfg.method.symmetric)
        out.loss.backward()

    return count_flops(step) / n


def random_images(n: int, channels: int, size: int, seed: int,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` random uint8 images ``(n, channels, size, size)`` on ``device``, seeded."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=gen,
                         device=device)


Column = tuple[str, str, Callable[[Any], str]]


def _num(fmt: str) -> Callable[[Any], str]:
    return lambda v: "n/a" if v is None else ("-" if isinstance(v, float) and math.isnan(v)
                                              else format(v, fmt))


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Fixed-width text table: ``columns`` are ``(key, header, formatter)``; a missing key or a
    None value prints as ``n/a``, a NaN as ``-``."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([fmt(r.get(k)) if r.get(k) is not None else "n/a" for k, _, fmt in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Wall time on the host, or CUDA events around the queued work (after a synchronisation)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> "Stopwatch":
        sync_device(self.device)
        if self.device.type == "cuda":
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self._end.record()
            torch.cuda.synchronize(self.device)
            self.seconds = self._start.elapsed_time(self._end) / 1e3
        else:
            self.seconds = time.perf_counter() - self._t0


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.resetpeak_memory_stats(device)


def peak_memory(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def check_losses(losses: list[torch.Tensor], what: str) -> None:
    vals = torch.stack(losses).float().cpu()
    if not torch.isfinite(vals).all():
        raise FloatingPointError(f"{what}: non-finite loss during the benchmark")


def run_steps(step_fn: Callable[[int], None], device: torch.device, warmup: int,
               steps: int) -> float:
    for k in range(warmup):
        step_fn(k)
    with Stopwatch(device) as sw:
        for k in range(warmup, warmup + steps):
            step_fn(k)
    return sw.seconds


def host_syncs(fn: Callable[[], Any], device: torch.device) -> tuple[int, list[str]] | None:
    """Host-device synchronisations that one call of ``fn`` makes on CUDA (each stalls the
    host until the device has drained its queue), found with ``torch.cuda.set_sync_debug_mode``:
    ``(count, sorted distinct "file:line" sources)``; None off CUDA."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize(device)
    hits = [w for w in caught if "synchroniz" in str(w.message).lower()]
    return len(hits), sorted({f"{os.path.basename(w.filename)}:{w.lineno}" for w in hits})


def directpred_overhead(cfg: TrainConfig, *, reps: int = 20, warmup: int = 3) -> dict[str, float]:
    """Seconds per step of the predictor's own work for ``cfg``'s predictor on the device:
    ``observe`` (the running correlation ``F`` from ``(2, B, d)`` projector outputs; every
    predictor does it) and ``after_optimizer_step`` (for DirectPred the ``d x d`` eigh and the
    setting of ``Wp``), each timed alone over ``reps`` calls after ``warmup``."""
    rt = resolve_runtime(cfg)
    d = cfg.model.proj_dim
    pred = build_predictor(cfg.predictor, d).to(rt.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    z = torch.randn(2, cfg.train.batch_size, d, generator=gen).to(rt.device)
    out: dict[str, float] = {}
    pred.observe(z, z)
    for name, fn in (("observe_s", lambda k: pred.observe(z, z)),
                     ("set_s", lambda k: pred.after_optimizer_step(k + 1))):
        out[name] = run_steps(fn, rt.device, warmup, reps) / reps
    return out
