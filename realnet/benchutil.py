"""Shared by the benchmarks (:mod:`realnet.bench`, :mod:`realnet.cpubench`): FLOPs of a training
step counted on the meta device, a seeded pool of random images, and fixed-width text tables."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import TrainConfig
from .data import dataset_spec
from .losses import LOSSES
from .model import build_ssl_model, ssl_loss

__all__ = ["count_flops", "step_flops_per_image", "random_images", "Column", "format_table"]


def count_flops(fn: Callable[[], Any]) -> int:
    """Matmul/convolution FLOPs (a multiply-add counts 2) of everything ``fn`` runs, forward and
    backward, as counted by :class:`torch.utils.flop_counter.FlopCounterMode`."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def step_flops_per_image(cfg: TrainConfig, *, n: int = 2) -> float:
    """FLOPs of one training step per image for ``cfg``'s model at ``cfg.data.image_size`` (or
    the dataset's size): the loss of :func:`realnet.model.ssl_loss` on two views (online forward
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


