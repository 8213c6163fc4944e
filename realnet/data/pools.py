"""The SSL pool and the images of a run: :class:`ImagePool` (what the trainer draws batches
from: :class:`ResidentPool` on the device, :class:`HostPool` in host memory, or a streamed
:class:`realnet.data.torchdata.DatasetPool`), :class:`BatchOrder` (which images make the batch of
each optimiser step), and :class:`RunData` with :func:`load_run_data` (the pool and the labelled
splits of a shipped dataset or an image folder)."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from analysis.errors import ConfigError
from realnet.config.sections import DataConfig
from realnet.data.datasets import (DEFAULT_ROOT, DatasetSpec, dataset_spec, imagefolder_classes,
                                   load_images)

__all__ = ["ImagePool", "ResidentPool", "HostPool", "BatchOrder", "RunData", "load_run_data", "rows_of"]


def rows_of(indices: torch.Tensor, rows: tuple[int, int] | None) -> torch.Tensor:
    """``indices`` or one rank's ``rows`` of them (:mod:`realnet.training.distributed`)."""
    return indices if rows is None else indices[rows[0]:rows[1]]


class ImagePool(Protocol):
    """The SSL pool as the trainer sees it."""

    def __len__(self) -> int: ...

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 images ``indices`` (any order) on the device."""

    def batch(self, order: "BatchOrder", step: int, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """The uint8 batch of optimiser step ``step`` on the device (its ``rows`` only, when
        given: one rank's share, :mod:`realnet.training.distributed`)."""


class ResidentPool:
    """The pool as one uint8 tensor on the device."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images[indices.to(self.images.device, non_blocking=True)]

    def batch(self, order: "BatchOrder", step: int, rows: tuple[int, int] | None = None) -> torch.Tensor:
        return self.take(rows_of(order.indices(step), rows))


class HostPool(ResidentPool):
    """The pool in host memory (pinned when the device is CUDA); batches are copied over."""

    def __init__(self, images: torch.Tensor, device: torch.device) -> None:
        images = images.cpu()
        super().__init__(images.pin_memory() if device.type == "cuda" else images)
        self.device = device

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        x = self.images[indices.cpu()]
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)


class BatchOrder:
    """Epoch permutations of ``n`` images, ``n // batch_size`` full batches per epoch (the last
    partial batch is dropped). The permutation of epoch ``e`` comes from a generator seeded by
    ``(seed, e)``, so the batch of any step is a pure function of the step (exact resume)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps_per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            s = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(s))
            self._epoch = epoch
        return self._perm

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, batch index within the epoch)`` of optimiser step ``step`` (0-based)."""
        return divmod(step, self.steps_per_epoch)

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = self.position(step)
        return self.permutation(epoch)[i * self.batch_size:(i + 1) * self.batch_size]

    def batch(self, images: torch.Tensor, step: int) -> torch.Tensor:
        """The images of optimiser step ``step``, gathered on ``images``' device."""
        return images[self.indices(step).to(images.device, non_blocking=True)]


@dataclass
class RunData:
    """The images a run needs: the SSL pool (:class:`realnet.data.pools.ImagePool`: on the device,
    or streamed), the labelled splits as uint8 tensors (on the device, or on the host when
    streamed) and their int64 labels on the device."""

    spec: DatasetSpec
    ssl: "ImagePool"
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @functools.cached_property
    def labelled(self) -> bool:
        """Whether the run has labels to probe with (read from the device once); without (an
        unlabelled image folder), the test split is the pool's first images with label -1 and
        evaluation is label-free."""
        return len(self.train_y) > 0 and len(self.test_y) > 0 and int(self.test_y.min()) >= 0


def load_run_data(d: DataConfig, batch_size: int, device: torch.device) -> RunData:
    """Load the SSL pool and the labelled train/test splits (first ``data.*_limit`` images) of the
    run's data section ``d``; a pool smaller than ``batch_size`` is refused. Without labels (an
    unlabelled image folder, or one without a test split) the test split is the pool's first
    ``data.test_limit`` images, labelled -1 (:attr:`RunData.labelled`). With ``data.stream``
    the images stay in host memory and batches are copied to the device."""
    if d.dataset == "torch":
        raise ConfigError("data.dataset=torch is invalid here: allowed only with the Python API's "
                         "own data (realnet.training.trainer.train(cfg, out, data=realnet.data.torchdata.TorchData(...)))")
    where = torch.device("cpu") if d.stream else device

    def get(split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = load_images(d.dataset, d.root, split, download=d.download, size=d.image_size)
        if limit is not None:
            x, y = x[:limit], y[:limit]
        return x.to(where), y.to(device)

    ssl_x, _ = get("ssl", d.ssl_limit)
    ssl = HostPool(ssl_x, device) if d.stream else ResidentPool(ssl_x)
    if len(ssl) < batch_size:
        raise ConfigError(f"train.batch_size={batch_size} is larger than the SSL pool "
                         f"({len(ssl)} images); allowed at most {len(ssl)}")
    train_x, train_y = get("train", d.train_limit)
    test_x, test_y = get("test", d.test_limit)
    if len(train_x) == 0 or len(test_x) == 0:  # no labels (or no test split): label-free evaluation
        test_x = ssl_x[:d.test_limit].to(where)  # a view of the pool on the same device
        test_y = torch.full((len(test_x),), -1, dtype=torch.int64, device=device)
    spec = dataset_spec(d.dataset)
    if d.dataset == "imagefolder":  # stored size and classes come from the data
        spec = dataclasses.replace(spec, image_size=int(ssl_x.shape[-1]),
                                   num_classes=len(imagefolder_classes(d.root or DEFAULT_ROOT)))
    return RunData(spec, ssl, train_x, train_y, test_x, test_y)
