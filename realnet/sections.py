"""The sections of a run config (``[data]``, ``[model]``, ``[method]``, ``[train]``, ``[eval]``,
``[log]``): typed dataclasses whose defaults are the paper's recipe, each with a ``validate`` that
names the key and its allowed range; and those range checks (one message style:
``key=value is invalid: allowed ...``). :mod:`realnet.config` assembles them into
:class:`realnet.config.TrainConfig`."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from .data import DATASETS
from .losses import LOSSES
from .models import ARCHS, STEMS
from .optim import LR_SCHEDULES

__all__ = ["DataConfig", "ModelConfig", "MethodConfig", "LoopConfig", "EvalConfig", "LogConfig",
           "METHODS", "EMA_SCHEDULES"]

METHODS = ("byol", "simsiam")
EMA_SCHEDULES = tuple(LR_SCHEDULES)  # one schedule family for the lr and the EMA momentum


# ---------------------------------------------------------------------------------------------
# checks (each raises ValueError naming the key and the allowed range)
# ---------------------------------------------------------------------------------------------
def _fail(key: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{key}={value!r} is invalid: allowed {allowed}")


def _int_at_least(key: str, value: Any, lo: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        _fail(key, value, f"an integer >= {lo}" + (" or none" if optional else ""))


def _in_range(key: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
              hi_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        _fail(key, value, f"a number in {lb}{lo}, {hi}{rb}")


def _one_of(key: str, value: Any, choices: typing.Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        _fail(key, value, "one of " + ", ".join(repr(c) for c in choices))


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    """Which images. ``ssl_limit/train_limit/test_limit`` keep the first N images of the SSL pool,
    the labelled train split (probe fit, kNN bank) and the test split (none = all).
    ``image_size`` is the side of the augmented crops (none = the dataset's native size)."""

    dataset: str = "cifar10"
    root: str | None = None
    download: bool = False
    ssl_limit: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    image_size: int | None = None

    def validate(self) -> None:
        _one_of("data.dataset", self.dataset, DATASETS)
        for name in ("ssl_limit", "train_limit", "test_limit"):
            _int_at_least(f"data.{name}", getattr(self, name), 2, optional=True)
        _int_at_least("data.image_size", self.image_size, 8, optional=True)


@dataclass
class ModelConfig:
    """Trunk and projector (THEORY.md section 4: ResNet-18, CIFAR stem, projector 512-512-128)."""

    arch: str = "resnet18"
    stem: str = "cifar"
    width: float = 1.0
    proj_hidden_dim: int = 512
    proj_dim: int = 128

    def validate(self) -> None:
        _one_of("model.arch", self.arch, ARCHS)
        _one_of("model.stem", self.stem, STEMS)
        _in_range("model.width", self.width, 0.0, 8.0, lo_open=True)
        _int_at_least("model.proj_hidden_dim", self.proj_hidden_dim, 1)
        _int_at_least("model.proj_dim", self.proj_dim, 1)


@dataclass
class MethodConfig:
    """BYOL (EMA target) or SimSiam (the target is the online network itself).

    ``target_init_copy``: the EMA target starts as a copy of the online network (BYOL); false
    gives it its own random initialisation, as in the paper's public code. ``stop_grad=false``
    lets the gradient flow through the target branch (only meaningful for SimSiam, whose target
    is the trained network). ``loss``: ``cosine`` (BYOL's ``2 - 2 cos`` per view pair) or ``l2`` (Eqn 1, on raw
    outputs); ``symmetric`` sums the loss over both view orders."""

    name: str = "byol"
    ema: float = 0.996
    ema_schedule: str = "constant"
    target_init_copy: bool = True
    stop_grad: bool = True
    loss: str = "cosine"
    symmetric: bool = True

    def validate(self) -> None:
        _one_of("method.name", self.name, METHODS)
        _in_range("method.ema", self.ema, 0.0, 1.0)
        _one_of("method.ema_schedule", self.ema_schedule, EMA_SCHEDULES)
        _one_of("method.loss", self.loss, LOSSES)
        if not self.stop_grad and self.name != "simsiam":
            _fail("method.stop_grad", self.stop_grad,
                  "true with method.name='byol' (its EMA target is not trained, so there is no "
                  "gradient to stop); use method.name='simsiam' for the no-stop-gradient ablation")


@dataclass
class LoopConfig:
    """Length and numerics of the loop. Exactly one of ``epochs`` (may be fractional) and
    ``steps``. ``bf16``/``channels_last``: none = auto (on for CUDA and for CPUs with native
    bf16, :mod:`realnet.runtime`). ``compile``: ``torch.compile`` the encoders on CUDA (opt-in;
    always off on CPU). ``threads``: CPU intra-op threads (none = ``OMP_NUM_THREADS`` if set,
    else 1)."""

    epochs: float | None = 100.0
    steps: int | None = None
    batch_size: int = 128
    bf16: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    threads: int | None = None

    def validate(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            _fail("train.steps", self.steps,
                  f"exactly one of train.steps / train.epochs set (train.epochs={self.epochs!r})")
        if self.epochs is not None:
            _in_range("train.epochs", self.epochs, 0.0, 1e6, lo_open=True)
        _int_at_least("train.steps", self.steps, 1, optional=True)
        _int_at_least("train.batch_size", self.batch_size, 2)
        _int_at_least("train.threads", self.threads, 1, optional=True)


@dataclass
class EvalConfig:
    """Monitors and final evaluation.

    kNN monitor (cosine-weighted, on trunk features of the labelled train split as the bank and the
    test split as queries) every ``knn_every`` steps (0 = only at the end). Final linear probe on
    frozen trunk features, also on a randomly initialised trunk as the baseline
    (``random_init_baseline``) and on the raw normalised pixels (``pixel_baseline``).

    Collapse rule (summary ``collapsed``): the run is collapsed when the RankMe effective rank of
    the test-set projector outputs is below ``collapse_rank`` or the std of the L2-normalised
    test-set projector outputs is below ``collapse_std_fraction / sqrt(proj_dim)`` (``1/sqrt(d)``
    is the value of embeddings spread over the sphere; 0 is a single point). Probe
    hyper-parameters left at none use :func:`realnet.evaluate.linear_probe`'s defaults."""

    knn_every: int = 0
    knn_k: int = 200
    knn_temperature: float = 0.1
    linear_probe: bool = True
    random_init_baseline: bool = True
    pixel_baseline: bool = True
    probe_epochs: int = 100
    probe_lr: float | None = None
    probe_weight_decay: float | None = None
    probe_batch_size: int = 256
    batch_size: int = 512
    collapse_rank: float = 1.5
    collapse_std_fraction: float = 0.1

    def validate(self) -> None:
        _int_at_least("eval.knn_every", self.knn_every, 0)
        _int_at_least("eval.knn_k", self.knn_k, 1)
        _in_range("eval.knn_temperature", self.knn_temperature, 0.0, 1e3, lo_open=True)
        _int_at_least("eval.probe_epochs", self.probe_epochs, 1)
        if self.probe_lr is not None:
            _in_range("eval.probe_lr", self.probe_lr, 0.0, 1e3, lo_open=True)
        if self.probe_weight_decay is not None:
            _in_range("eval.probe_weight_decay", self.probe_weight_decay, 0.0, 1e3)
        _int_at_least("eval.probe_batch_size", self.probe_batch_size, 1)
        _int_at_least("eval.batch_size", self.batch_size, 1)
        _in_range("eval.collapse_rank", self.collapse_rank, 1.0, 1e6)
        _in_range("eval.collapse_std_fraction", self.collapse_std_fraction, 0.0, 1.0,
                  lo_open=True, hi_open=True)


@dataclass
class LogConfig:
    """Periods in optimiser steps. ``every``: a metrics.jsonl line; ``spectra_every``: a spectra
    snapshot (0 = only at the end); ``checkpoint_every``: an atomic checkpoint (0 = only at the
    end); ``probe_size``: images in the fixed probe batch of the spectra snapshots;
    ``save_matrices``: keep the full F / Wp / view-correlation matrices in each snapshot."""

    every: int = 50
    spectra_every: int = 500
    checkpoint_every: int = 1000
    probe_size: int = 512
    save_matrices: bool = True

    def validate(self) -> None:
        _int_at_least("log.every", self.every, 1)
        _int_at_least("log.spectra_every", self.spectra_every, 0)
        _int_at_least("log.checkpoint_every", self.checkpoint_every, 0)
        _int_at_least("log.probe_size", self.probe_size, 2)
