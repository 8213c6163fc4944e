"""The conventional input pipeline of public BYOL / SimSiam code, as the benchmark's reference.

What most public implementations do (and what :mod:`realnet.tools.bench` measures the on-device path
against): the dataset keeps HWC uint8 arrays, ``__getitem__`` turns one image into a PIL image
(as ``torchvision.datasets.CIFAR10`` does) and applies torchvision's per-image transforms twice,
once per view; a :class:`torch.utils.data.DataLoader` with worker processes collates the views
into float32 batches in pinned memory, which are copied to the device; the model runs in fp32,
eager mode, no channels_last. Only the input pipeline and those numerics differ from a training
run: the model side of a step is the trainer's own :meth:`realnet.training.step.TrainStep.update`.

The per-image transforms take their parameters from the run's
:class:`realnet.data.augment.AugmentConfig` (so the work per image is the recipe's)::

    RandomResizedCrop(out, scale, ratio) -> RandomHorizontalFlip(flip_p)
    -> RandomApply([ColorJitter(b, c, s, h)], jitter_p) -> RandomGrayscale(grayscale_p)
    -> RandomApply([GaussianBlur(kernel, sigma)], blur_p) -> ToTensor -> Normalize(mean, std)

``api="v1"`` uses ``torchvision.transforms`` (``ToTensor``); ``api="v2"`` uses
``torchvision.transforms.v2`` (``ToImage`` + ``ToDtype(float32, scale=True)``), which also accepts
uint8 tensors ``(C, H, W)`` instead of PIL images. Steps whose probability is 0 are left out.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from realnet.data.augment import AugmentConfig, GPUAugment
from realnet.data.datasets import DatasetSpec
from analysis.errors import ConfigError

__all__ = ["TRANSFORM_APIS", "conventional_transform", "TwoViews", "TwoViewDataset",
           "conventional_loader", "default_workers"]


def _to_tensor_v1(T: Any) -> list[Any]:
    return [T.ToTensor()]


def _to_tensor_v2(T: Any) -> list[Any]:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True)]


def _module_v1() -> Any:
    import torchvision.transforms as T

    return T


def _module_v2() -> Any:
    import torchvision.transforms.v2 as T

    return T


#: torchvision transform APIs: (module loader, the uint8 -> float [0, 1] tensor step).
TRANSFORM_APIS: dict[str, tuple[Callable[[], Any], Callable[[Any], list[Any]]]] = {
    "v1": (_module_v1, _to_tensor_v1),
    "v2": (_module_v2, _to_tensor_v2),
}


def conventional_transform(cfg: AugmentConfig, spec: DatasetSpec, out_size: int | None = None,
                           *, api: str = "v1") -> Callable[[Any], torch.Tensor]:
    """The per-image torchvision pipeline of one view (module docstring), float32 normalised
    ``(C, out, out)``. ``api``: ``"v1"`` or ``"v2"`` (:data:`TRANSFORM_APIS`)."""
    if api not in TRANSFORM_APIS:
        raise ConfigError(f"api={api!r} is invalid: allowed one of {sorted(TRANSFORM_APIS)}")
    cfg.validate()
    out = spec.image_size if out_size is None else out_size
    load, to_tensor = TRANSFORM_APIS[api]
    T = load()
    b, c, s, h = cfg.jitter
    steps: list[Any] = [T.RandomResizedCrop(out, scale=tuple(cfg.crop_scale),
                                            ratio=tuple(cfg.crop_ratio), antialias=True)]
    if cfg.flip_p > 0:
        steps.append(T.RandomHorizontalFlip(cfg.flip_p))
    if cfg.jitter_p > 0 and any(v > 0 for v in cfg.jitter):
        steps.append(T.RandomApply([T.ColorJitter(b, c, s, h)], p=cfg.jitter_p))
    if cfg.grayscale_p > 0:
        steps.append(T.RandomGrayscale(cfg.grayscale_p))
    if cfg.blur_p > 0:
        kernel = GPUAugment(cfg, spec, out_size=out).blur_kernel  # the same kernel size rule
        steps.append(T.RandomApply([T.GaussianBlur(kernel, sigma=tuple(cfg.blur_sigma))],
                                   p=cfg.blur_p))
    steps += to_tensor(T)
    steps.append(T.Normalize(spec.mean, spec.std))
    return T.Compose(steps)


class TwoViews:
    """Apply ``transform`` twice, independently: ``(view 1, view 2)``."""

    def __init__(self, transform: Callable[[Any], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, img: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(img), self.transform(img)


class TwoViewDataset(torch.utils.data.Dataset):
    """uint8 images kept as HWC numpy arrays; item ``i`` is a PIL image (mode ``L`` or ``RGB``)
    passed through :class:`TwoViews` -- the ``torchvision.datasets.CIFAR10`` pattern."""

    def __init__(self, images_uint8: torch.Tensor | np.ndarray,
                 transform: Callable[[Any], torch.Tensor]) -> None:
        x = images_uint8.cpu().numpy() if isinstance(images_uint8, torch.Tensor) else images_uint8
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ConfigError(f"images_uint8: need uint8 (N, C, H, W) with C in (1, 3), got "
                             f"{x.dtype} {tuple(x.shape)}")
        hwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        self.images = hwc[..., 0] if hwc.shape[-1] == 1 else hwc
        self.views = TwoViews(transform)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.views(Image.fromarray(self.images[i]))


def default_workers() -> int:
    """Every CPU core this process may use (the most generous setting for the baseline)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def conventional_loader(images_uint8: torch.Tensor | np.ndarray, cfg: AugmentConfig,
                        spec: DatasetSpec, batch_size: int, *, out_size: int | None = None,
                        workers: int | None = None, pin_memory: bool = False, seed: int = 0,
                        api: str = "v1", prefetch_factor: int = 2,
                        ) -> torch.utils.data.DataLoader:
    """A shuffling, last-batch-dropping DataLoader of ``(view 1, view 2)`` float32 batches
    ``(B, C, out, out)`` from ``workers`` worker processes (None: :func:`default_workers`; 0:
    in the calling process), pinned when ``pin_memory``, persistent across epochs."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid: allowed an integer >= 1")
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers={workers!r} is invalid: allowed an integer >= 0")
    ds = TwoViewDataset(images_uint8, conventional_transform(cfg, spec, out_size, api=api))
    if len(ds) < batch_size:
        raise ConfigError(f"batch_size={batch_size} is invalid: allowed at most the {len(ds)} "
                         "images given")
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor}
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True,
                                       num_workers=workers, pin_memory=pin_memory,
                                       generator=torch.Generator().manual_seed(seed), **extra)
