"""Augmentation throughput: the batched on-device :class:`realnet.data.augment.GPUAugment` against
torchvision's per-image pipelines of the same recipe (one table of ``python -m realnet.tools.bench``)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from realnet.data.augment import GPUAugment
from realnet.config.train_config import load_config
from realnet.data.datasets import dataset_spec
from .baseline import conventional_transform
from .benchutil import Column, Stopwatch, _num, random_images

__all__ = ["augment_throughput", "AUG_COLUMNS"]


def augment_throughput(dataset: str, size: int, batch: int, *, reps: int = 3,
                       devices: Sequence[str] = ("cpu",), seed: int = 0) -> list[dict[str, Any]]:
    """Images/s (one view per image) of :class:`GPUAugment` on a ``batch`` of random uint8
    images of ``size`` px on each of ``devices``, and of torchvision's per-image pipeline of the
    same recipe (:func:`realnet.tools.baseline.conventional_transform`) looped over the batch in this
    process: v2 on uint8 tensors, v1 on PIL images (the baseline's path). ``reps`` timed repeats
    after one warm-up."""
    from PIL import Image

    spec = dataset_spec(dataset)
    cfg = load_config(None, [f"data.dataset={dataset}"]).augment_config()
    x = random_images(batch, spec.channels, size, seed)
    rows: list[dict[str, Any]] = []

    def measure(label: str, device: torch.device, fn: Callable[[], Any]) -> None:
        fn()
        with Stopwatch(device) as sw:
            for _ in range(reps):
                fn()
        rows.append({"dataset": dataset, "size": size, "batch": batch, "pipeline": label,
                     "images_per_s": reps * batch / sw.seconds})

    for dev_name in devices:
        dev = torch.device(dev_name)
        aug = GPUAugment(cfg, spec, out_size=size)
        xd = x.to(dev)
        gen = torch.Generator(device=dev).manual_seed(seed)
        threads = f", {torch.get_num_threads()} threads" if dev.type == "cpu" else ""
        measure(f"GPUAugment batch ({dev.type}{threads})", dev, lambda: aug(xd, gen))
    cpu = torch.device("cpu")
    t2 = conventional_transform(cfg, spec, size, api="v2")
    measure("transforms.v2 per image (uint8 tensor)", cpu, lambda: [t2(img) for img in x])
    t1 = conventional_transform(cfg, spec, size, api="v1")
    hwc = x.permute(0, 2, 3, 1).numpy()
    pil = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in hwc]
    measure("transforms v1 per image (PIL)", cpu, lambda: [t1(img) for img in pil])
    return rows


AUG_COLUMNS: list[Column] = [
    ("dataset", "shape of", str), ("size", "px", _num("d")), ("batch", "batch", _num("d")),
    ("pipeline", "augmentation (one view per image)", str),
    ("images_per_s", "img/s", _num(",.0f")), ("vs_v2", "x transforms.v2", _num(".1f")),
]
