"""Where the SSL pool's images come from during training: resident on the device, streamed from
host memory, or streamed from any ``torch.utils.data.Dataset`` (the Python API's own data).

Every pool hands the trainer uint8 batches ``(B, C, H, W)`` on the device, chosen by the run's
:class:`realnet.data.pools.BatchOrder`; the per-sample augmentation then runs on the device exactly as
for a resident pool (:mod:`realnet.data.augment`), so a streamed run equals a resident one (tested).

- :class:`realnet.data.pools.ResidentPool`: the whole pool on the device (the default; fastest when it
  fits).
- :class:`realnet.data.pools.HostPool` (``data.stream=true``): the pool stays in host memory (pinned on
  CUDA); each batch is gathered there and copied to the device.
- :class:`DatasetPool`: items of a map-style ``Dataset`` (``(image, label)`` or ``image``, with the
  image a PIL image, an ``HWC``/``HW`` uint8 array or a ``CHW`` tensor, uint8 or float in [0, 1])
  converted to uint8 ``CHW`` at one side (:func:`to_uint8_chw`), loaded a batch at a time by a
  ``DataLoader`` with ``data.workers`` processes that follows the run's batch order, so
  nothing but the current batches is ever in memory.

:class:`TorchData` is what the API takes (``realnet.training.trainer.train(cfg, out, data=TorchData(...))``):
the SSL pool and the labelled splits as Datasets. :func:`torch_run_data` turns it into the
trainer's :class:`realnet.data.pools.RunData` (the labelled splits are read into host memory, the pool
is resident or a :class:`DatasetPool` by ``data.stream``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as Fn
from torch.utils.data import DataLoader, Dataset

from realnet.data.datasets import DATASETS
from realnet.config.sections import DataConfig
from realnet.data.pools import BatchOrder, HostPool, ImagePool, ResidentPool, RunData, rows_of

__all__ = ["ImagePool", "ResidentPool", "HostPool", "DatasetPool", "TorchData", "to_uint8_chw",
           "read_dataset", "pixel_stats", "torch_run_data"]


# ---------------------------------------------------------------------------------------------
# items of a torch Dataset as uint8 CHW images
# ---------------------------------------------------------------------------------------------
def _image_of(item: Any) -> Any:
    return item[0] if isinstance(item, (tuple, list)) else item


def _label_of(item: Any) -> int:
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise ValueError("a labelled split must yield (image, label) pairs; got "
                         f"{type(item).__name__}")
    return int(item[1])


def to_uint8_chw(image: Any, size: int | None = None) -> torch.Tensor:
    """One image as a uint8 ``(C, H, W)`` tensor; with ``size``, its shorter side resized to
    ``size`` (bilinear, antialiased) and centre-cropped to ``size x size`` (the ImageFolder rule of
    :mod:`realnet.data.datasets`). Accepts a PIL image, a uint8 ``(H, W)`` / ``(H, W, C)`` array or a
    ``(C, H, W)`` tensor (uint8, or float in [0, 1] as ``ToTensor`` gives)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        arr = np.asarray(image)
        x = torch.from_numpy(arr.copy())
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"a numpy image must be uint8, got {image.dtype}")
        x = torch.from_numpy(image.copy())
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        x = image.detach().cpu()
        if x.ndim == 2:
            x = x[None]
        if x.is_floating_point():
            x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        elif x.dtype != torch.uint8:
            raise ValueError(f"a tensor image must be uint8 or float in [0, 1], got {x.dtype}")
    else:
        raise ValueError(f"an image must be a PIL image, a numpy array or a tensor, got {type(image).__name__}")
    if x.ndim != 3:
        raise ValueError(f"an image must have 2 or 3 dimensions, got shape {tuple(x.shape)}")
    if size is not None and tuple(x.shape[1:]) != (size, size):
        h, w = x.shape[1:]
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        y = Fn.interpolate(x[None].float(), size=(nh, nw), mode="bilinear", antialias=True,
                           align_corners=False)[0]
        top, left = (nh - size) // 2, (nw - size) // 2
        x = y[:, top:top + size, left:left + size].round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()


class _Converted(Dataset):
    """``ds`` with every item as ``(uint8 CHW at size, label or -1)``."""

    def __init__(self, ds: Dataset, size: int, labelled: bool) -> None:
        self.ds, self.size, self.labelled = ds, size, labelled

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.ds[int(i)]
        return to_uint8_chw(_image_of(item), self.size), (_label_of(item) if self.labelled else -1)


def _loader(ds: Dataset, *, workers: int, batch_sampler: Any = None, batch_size: int = 256) -> DataLoader:
    kw: dict[str, Any] = {"num_workers": workers}
    if workers > 0:
        kw["persistent_workers"] = False
        kw["prefetch_factor"] = 4
    if batch_sampler is not None:
        return DataLoader(ds, batch_sampler=batch_sampler, **kw)
    return DataLoader(ds, batch_size=batch_size, shuffle=False, **kw)


def read_dataset(ds: Dataset, size: int, *, labelled: bool, limit: int | None = None,
                 workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` items of ``ds`` as ``(uint8 (N, C, size, size), int64 labels)`` on the
    host (labels -1 when ``labelled`` is false)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise ValueError("a dataset of the run is empty")
    sub = torch.utils.data.Subset(_Converted(ds, size, labelled), range(n))
    xs, ys = [], []
    for x, y in _loader(sub, workers=workers):
        xs.append(x)
        ys.append(torch.as_tensor(y, dtype=torch.int64))
    return torch.cat(xs).contiguous(), torch.cat(ys)


def pixel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the [0, 1] scale of uint8 ``(N, C, H, W)`` images."""
    x = images.double() / 255.0
    return (tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist()))


class _StepBatches:
    """The batch sampler of steps ``start .. stop - 1`` of a :class:`realnet.data.pools.BatchOrder`
    (each batch's ``rows`` only, when given)."""

    def __init__(self, order: "BatchOrder", start: int, stop: int,
                 rows: tuple[int, int] | None = None) -> None:
        self.order, self.start, self.stop, self.rows = order, start, stop, rows

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start, self.stop):
            yield rows_of(self.order.indices(k), self.rows).tolist()


class DatasetPool:
    """A map-style Dataset streamed in the run's batch order by a ``DataLoader`` (``workers``
    processes, prefetching); random access (:meth:`take`) reads items in this process."""

    def __init__(self, ds: Dataset, size: int, device: torch.device, *, workers: int = 2,
                 total_steps: int | None = None) -> None:
        self.ds = _Converted(ds, size, labelled=False)
        self.device, self.workers, self.total_steps = device, workers, total_steps
        self._it: Iterator | None = None
        self._next_step = -1

    def __len__(self) -> int:
        return len(self.ds)

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.ds[int(i)][0] for i in indices.tolist()]).to(self.device)

    def batch(self, order: "BatchOrder", step: int, rows: tuple[int, int] | None = None) -> torch.Tensor:
        if self._it is None or step != self._next_step:  # first batch, or a jump (resume)
            stop = self.total_steps if self.total_steps is not None else step + 10 ** 9
            self._it = iter(_loader(self.ds, workers=self.workers,
                                    batch_sampler=_StepBatches(order, step, stop, rows)))
        x, _ = next(self._it)
        self._next_step = step + 1
        return x.to(self.device, non_blocking=True)


# ---------------------------------------------------------------------------------------------
# the Python API's own data
# ---------------------------------------------------------------------------------------------
@dataclass
class TorchData:
    """Own data for :func:`realnet.training.trainer.train`: ``ssl`` is the pool SSL trains on (labels, if any,
    are ignored); ``train`` (labelled; default ``ssl``) fits the linear probe and holds the kNN
    bank; ``test`` (labelled; default ``train``) scores them. ``image_size``: the stored side
    (default: the first image's shorter side); images of another size are resized and
    centre-cropped to it. ``num_classes``: default the largest label + 1. ``mean``/``std``: per
    channel on [0, 1] (default: computed from up to 10,000 images of the labelled train split).
    ``name`` labels the data in ``run.json``."""

    ssl: Dataset
    train: Dataset | None = None
    test: Dataset | None = None
    image_size: int | None = None
    num_classes: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    name: str = "torch"

    def side(self) -> int:
        if self.image_size is not None:
            return int(self.image_size)
        if len(self.ssl) == 0:
            raise ValueError("TorchData.ssl is empty")
        x = to_uint8_chw(_image_of(self.ssl[0]))
        return int(min(x.shape[1:]))


def torch_run_data(data: TorchData, d: DataConfig, device: torch.device) -> RunData:
    """The trainer's :class:`realnet.data.pools.RunData` from :class:`TorchData` and the run's
    data section ``d`` (``data.*_limit`` keep the first images; ``data.stream`` streams the pool
    with ``data.workers`` processes)."""
    size = int(d.image_size or data.side())
    train_ds = data.train if data.train is not None else data.ssl
    test_ds = data.test if data.test is not None else train_ds
    train_x, train_y = read_dataset(train_ds, size, labelled=True, limit=d.train_limit, workers=d.workers)
    test_x, test_y = read_dataset(test_ds, size, labelled=True, limit=d.test_limit, workers=d.workers)
    if d.stream:
        ssl_ds = data.ssl if d.ssl_limit is None else torch.utils.data.Subset(
            data.ssl, range(min(d.ssl_limit, len(data.ssl))))
        pool: Any = DatasetPool(ssl_ds, size, device, workers=d.workers)
    else:
        ssl_x, _ = read_dataset(data.ssl, size, labelled=False, limit=d.ssl_limit, workers=d.workers)
        pool = ResidentPool(ssl_x.to(device))
    if data.mean is None or data.std is None:
        mean, std = pixel_stats(train_x[:10000])
    else:
        mean, std = tuple(data.mean), tuple(data.std)
    channels = int(train_x.shape[1])
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"TorchData.mean/std: need {channels} values (one per channel), got "
                         f"{len(mean)} / {len(std)}")
    num_classes = data.num_classes or int(max(train_y.max(), test_y.max())) + 1
    spec = dataclasses.replace(DATASETS["torch"], name=data.name, image_size=size,
                               channels=channels, num_classes=num_classes, mean=mean, std=std)
    where = torch.device("cpu") if d.stream else device  # streamed: labelled splits stay on the host
    return RunData(spec, pool, train_x.to(where), train_y.to(device), test_x.to(where),
                   test_y.to(device))
