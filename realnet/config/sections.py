"""The sections of a run config (``[data]``, ``[model]``, ``[method]``, ``[train]``, ``[eval]``,
``[log]``): typed dataclasses whose defaults are the paper's recipe, each key declared with its allowed
values next to its default (:mod:`realnet.config.ranges`); ``validate`` checks them and the rules that
tie keys together, with one message style (``key=value is invalid: allowed ...``). :mod:`realnet.config.train_config` assembles them into
:class:`realnet.config.train_config.TrainConfig`."""
from __future__ import annotations

import os

from dataclasses import dataclass

from realnet.data.datasets import DATASETS
from realnet.methods.losses import LOSSES
from realnet.methods.registry import METHODS
from realnet.nets.backbones import all_archs
from realnet.nets.resnet import ARCHS as OWN_ARCHS, STEMS
from realnet.nets.norms import HEAD_NORMS, TRUNK_NORMS
from realnet.training.optim import LR_SCHEDULES
from realnet.config.ranges import (check_fields, fail, flag, integer, knob, number, one_of,
                                   ordered_pair)

__all__ = ["DataConfig", "ModelConfig", "MethodConfig", "LoopConfig", "EvalConfig", "LogConfig",
           "EMA_SCHEDULES"]


EMA_SCHEDULES = tuple(LR_SCHEDULES)  # one schedule family for the lr and the EMA momentum


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    """Which images. ``ssl_limit/train_limit/test_limit`` keep the first N images of the SSL pool,
    the labelled train split (probe fit, kNN bank) and the test split (none = all).
    ``image_size`` is the side of the augmented crops (none = the dataset's native size).
    ``stream``: the images stay in host memory (or, for the Python API's torch Dataset, are read
    a batch at a time by ``workers`` loader processes) and each batch is copied to the device; the
    run equals a resident one (:mod:`realnet.data.torchdata`)."""

    dataset: str = knob("cifar10", one_of(DATASETS))
    root: str | None = None
    download: bool = knob(False, flag())
    ssl_limit: int | None = knob(None, integer(2, optional=True))
    train_limit: int | None = knob(None, integer(2, optional=True))
    test_limit: int | None = knob(None, integer(2, optional=True))
    image_size: int | None = knob(None, integer(8, 512, optional=True))
    stream: bool = knob(False, flag())  # keep the images in host memory, copy each batch over
    workers: int = knob(2, integer(0, 64))  # loader processes of a streamed torch Dataset

    def validate(self) -> None:
        check_fields(self, "data.")


@dataclass
class ModelConfig:
    """Trunk and projector (THEORY.md section 4: ResNet-18, CIFAR stem, projector 512-512-128)."""

    arch: str = knob("resnet18", one_of(all_archs))  # realnet's resnet18/34 or any torchvision model
    stem: str = knob("cifar", one_of(STEMS))
    width: float = knob(1.0, number(0.0, 8.0, lo_open=True))
    proj_hidden_dim: int = knob(512, integer(1))
    proj_dim: int = knob(128, integer(1))
    head_norm: str = knob("batchnorm", one_of(HEAD_NORMS))  # projector / predictor: batchnorm | none | groupnorm
    trunk_norm: str = knob("batchnorm", one_of(TRUNK_NORMS))  # batchnorm | groupnorm_ws (realnet.nets.norms)

    def validate(self) -> None:
        check_fields(self, "model.")
        if self.arch not in (*OWN_ARCHS, "custom") and self.width != 1:  # custom: the module is the trunk
            fail("model.width", self.width, f"1 for model.arch={self.arch} (only realnet's own "
                 f"{', '.join(sorted(OWN_ARCHS))} take a width multiplier)")


@dataclass
class MethodConfig:
    """BYOL (EMA target) or SimSiam (the target is the online network itself); SimCLR (NT-Xent)
    and SwAV (prototypes, Sinkhorn codes, swapped prediction) as the contrastive and clustering
    references (:mod:`realnet.methods.contrastive`; they take ``predictor.name = identity`` and use
    ``temperature`` (default 0.5 for SimCLR, 0.1 for SwAV), and SwAV ``swav_prototypes``,
    ``swav_epsilon``, ``swav_iterations`` and ``swav_freeze_steps``). SwAV's multi-crop:
    ``swav_small_crops`` extra views of ``swav_small_size`` px (0: ``image_size * 96 / 224``, SwAV's
    ImageNet ratio, at least 8) cropped at area ``swav_small_scale``; the two full-size views keep
    ``augment.crop_scale``, and only they get codes (:func:`realnet.methods.contrastive.swav_multicrop_loss`).

    ``target_init_copy``: the EMA target starts as a copy of the online network (BYOL); false
    gives it its own random initialisation, as in the paper's public code. ``stop_grad=false``
    lets the gradient flow through the target branch (only meaningful for SimSiam, whose target
    is the trained network). ``loss``: ``cosine`` (BYOL's ``2 - 2 cos`` per view pair) or ``l2`` (Eqn 1, on raw
    outputs); ``symmetric`` sums the loss over both view orders."""

    name: str = knob("byol", one_of(METHODS))  # realnet.methods.registry
    ema: float = knob(0.996, number(0.0, 1.0))
    ema_schedule: str = knob("constant", one_of(EMA_SCHEDULES))
    target_init_copy: bool = knob(True, flag())
    stop_grad: bool = knob(True, flag())
    loss: str = knob("cosine", one_of(LOSSES))
    symmetric: bool = knob(True, flag())
    temperature: float | None = knob(None, number(0.0, 100.0, lo_open=True, optional=True))
    swav_prototypes: int = knob(100, integer(2))
    swav_epsilon: float = knob(0.05, number(0.0, 10.0, lo_open=True))
    swav_iterations: int = knob(3, integer(1, 1000))
    swav_freeze_steps: int = knob(313, integer(0))
    swav_small_crops: int = knob(0, integer(0, 16))
    swav_small_size: int = knob(0, integer(0))
    swav_small_scale: tuple[float, float] = knob((0.05, 0.14), ordered_pair(0.0, 1.0))

    @property
    def tau(self) -> float:
        """The temperature in use (SimCLR 0.5, SwAV 0.1 when unset)."""
        if self.temperature is not None:
            return self.temperature
        return METHODS[self.name].temperature

    def small_size(self, image_size: int) -> int:
        """The side of SwAV's small crops for views of ``image_size`` px."""
        return self.swav_small_size or max(8, round(image_size * 96 / 224))

    def validate(self) -> None:
        check_fields(self, "method.")
        method = METHODS[self.name]
        if self.swav_small_crops and not method.multicrop:
            fail("method.swav_small_crops", self.swav_small_crops,
                 f"0 with method.name={self.name!r} (multi-crop is SwAV's; set method.name='swav')")
        if not self.stop_grad and not method.trains_target:
            fail("method.stop_grad", self.stop_grad,
                  f"true with method.name={self.name!r} (its target is not trained, so there is "
                  "no gradient to stop); use method.name='simsiam' for the no-stop-gradient ablation")


@dataclass
class LoopConfig:
    """Length and numerics of the loop. Exactly one of ``epochs`` (may be fractional) and
    ``steps``. ``bf16``/``channels_last``: none = auto (on for CUDA and for CPUs with native
    bf16, :mod:`realnet.training.runtime`). ``compile``: ``torch.compile`` the encoders on CUDA (opt-in;
    always off on CPU). ``threads``: CPU intra-op threads (none = ``OMP_NUM_THREADS`` if set,
    else 1). ``sync_bn``: under ``torchrun``, BatchNorm statistics over the global batch instead
    of each process's share (:mod:`realnet.training.distributed`; no effect in one process)."""

    epochs: float | None = knob(100.0, number(0.0, 1e6, lo_open=True, optional=True))
    steps: int | None = knob(None, integer(1, optional=True))
    batch_size: int = knob(128, integer(2))
    bf16: bool | None = knob(None, flag(optional=True))
    channels_last: bool | None = knob(None, flag(optional=True))
    compile: bool = knob(False, flag())
    threads: int | None = knob(None, integer(1, os.cpu_count() or 1, optional=True))  # up to the cores here
    sync_bn: bool = knob(False, flag())  # under torchrun: BatchNorm over the global batch

    def validate(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            fail("train.steps", self.steps,
                 f"exactly one of train.steps / train.epochs set (train.epochs={self.epochs!r})")
        check_fields(self, "train.")


@dataclass
class EvalConfig:
    """Monitors and final evaluation.

    kNN monitor (cosine-weighted, on trunk features of the labelled train split as the bank and the
    test split as queries) every ``knn_every`` steps (0 = only at the end). ``online_probe``: a
    linear classifier trained at every step on the trunk's detached features of labelled
    training images, logged as ``online_probe_top1`` (:mod:`realnet.eval.online_probe`; the SSL
    run itself is unchanged). Final linear probe on
    frozen trunk features, also on a randomly initialised trunk as the baseline
    (``random_init_baseline``) and on the raw normalised pixels (``pixel_baseline``).

    Collapse rule (summary ``collapsed``): the run is collapsed when the RankMe effective rank of
    the test-set projector outputs is below ``collapse_rank`` or the std of the L2-normalised
    test-set projector outputs is below ``collapse_std_fraction / sqrt(proj_dim)`` (``1/sqrt(d)``
    is the value of embeddings spread over the sphere; 0 is a single point). Probe
    hyper-parameters left at none use :func:`realnet.eval.evaluate.linear_probe`'s defaults."""

    knn_every: int = knob(0, integer(0))
    online_probe: bool = knob(False, flag())  # a linear head trained during SSL (realnet.eval.online_probe)
    knn_k: int = knob(200, integer(1))
    knn_temperature: float = knob(0.1, number(0.0, 1e3, lo_open=True))
    linear_probe: bool = knob(True, flag())
    random_init_baseline: bool = knob(True, flag())
    pixel_baseline: bool = knob(True, flag())
    probe_epochs: int = knob(100, integer(1))
    probe_lr: float | None = knob(None, number(0.0, 1e3, lo_open=True, optional=True))
    probe_weight_decay: float | None = knob(None, number(0.0, 1e3, optional=True))
    probe_batch_size: int = knob(256, integer(1))
    batch_size: int = knob(512, integer(1))
    collapse_rank: float = knob(1.5, number(1.0, 1e6))
    collapse_std_fraction: float = knob(0.1, number(0.0, 1.0, lo_open=True, hi_open=True))

    def validate(self) -> None:
        check_fields(self, "eval.")


@dataclass
class LogConfig:
    """Periods in optimiser steps. ``every``: a metrics.jsonl line; ``spectra_every``: a spectra
    snapshot (0 = only at the end); ``checkpoint_every``: an atomic checkpoint (0 = only at the
    end); ``keep_checkpoints``: also keep the checkpoint of every N-th step as
    ``checkpoints/step_XXXXXXX.pt`` for later ``eval --step`` / ``export --step`` (0 = only
    ``last.pt``); ``probe_size``: images in the fixed probe batch of the spectra snapshots;
    ``save_matrices``: keep the full F / Wp / view-correlation matrices in each snapshot;
    ``tensorboard``: also write TensorBoard events (:mod:`realnet.training.tblog`)."""

    every: int = knob(50, integer(1))
    spectra_every: int = knob(500, integer(0))
    checkpoint_every: int = knob(1000, integer(0))
    keep_checkpoints: int = knob(0, integer(0))  # also keep every N-th step's as step_*.pt (0: last only)
    probe_size: int = knob(512, integer(2, 8192))
    save_matrices: bool = knob(True, flag())
    tensorboard: bool = knob(False, flag())  # also write <run>/tensorboard/ (extra: tensorboard)

    def validate(self) -> None:
        check_fields(self, "log.")
