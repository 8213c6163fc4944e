"""One optimiser step of a run (steps 2-6 of :mod:`realnet.training.trainer`'s docstring) and what it is
built from: the batch order, the optimiser groups, :class:`TrainStep` (the single code path that
the trainer runs and :mod:`realnet.tools.bench` times) and :func:`build_train_step`."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from realnet.data.augment import GPUAugment
from realnet.nets.backbones import BackboneFactory
from realnet.config.train_config import TrainConfig
from realnet.data.datasets import DatasetSpec
from realnet.training.distributed import (LossModule, Shard, convert_global_bn, gather_batch,
                                          mean_over_ranks)
from realnet.methods.registry import METHODS
from realnet.nets.ssl_model import SSLModel, build_ssl_model
from realnet.training.optim import build_optimizer
from realnet.methods.predictors import predictor_param_groups
from realnet.training.runtime import Runtime, settle_channels_last

__all__ = ["total_steps", "param_groups", "TrainStep", "build_train_step", "AUG_SEED"]

#: Offset of the seed of the augmentation generator (kept apart from the model seed).
AUG_SEED = 1


# ---------------------------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------------------------


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """``train.steps``, or ``ceil(train.epochs * steps_per_epoch)``."""
    if cfg.train.steps is not None:
        return cfg.train.steps
    return max(1, math.ceil(cfg.train.epochs * steps_per_epoch - 1e-9))


def param_groups(model: SSLModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Online encoder at ``optim.lr``; the predictor's trainable parameters at
    ``predictor.lr_ratio * optim.lr`` (alpha_p) with ``predictor.weight_decay`` when set
    (:func:`realnet.methods.predictors.predictor_param_groups`). Each group carries ``base_lr``, which the
    lr schedule multiplies at every step."""
    groups = [{"params": list(model.online.parameters()), "lr": cfg.optim.lr, "name": "online"}]
    if model.prototypes is not None:  # SwAV: trained with the online network
        groups.append({"params": list(model.prototypes.parameters()), "lr": cfg.optim.lr,
                       "name": "prototypes"})
    groups += predictor_param_groups(model.predictor, cfg.predictor, cfg.optim.lr,
                                     cfg.optim.weight_decay)
    for g in groups:
        g["base_lr"] = g["lr"]
    return groups


# ---------------------------------------------------------------------------------------------
# one optimiser step (the code path the trainer and the benchmark both run)
# ---------------------------------------------------------------------------------------------
@dataclass
class TrainStep:
    """One optimiser step of the training loop (steps 2-6 of the module docstring), the single
    code path that :func:`train` runs and that :mod:`realnet.tools.bench` times.

    ``step(batch, k, lr_mult, momentum)`` on a uint8 ``batch`` (B, C, H, W) on the device: two
    augmented views from ``generator`` (:meth:`views`; channels_last when
    ``runtime.channels_last``), then :meth:`update`: the loss under bf16 autocast when
    ``runtime.bf16``, backward, ``predictor.observe``, the lr of every group set to
    ``base_lr * lr_mult``, the optimiser step, ``predictor.after_optimizer_step(k + 1)`` and the
    EMA update of the target with ``momentum``. Returns the detached loss (not read back to the
    host); when ``losses`` is given the loss is appended to it right after the forward pass, so a
    failure later in the step (an ``eigh`` of a NaN correlation) still leaves the loss there for
    the caller to report."""

    model: SSLModel
    optimizer: torch.optim.Optimizer
    augment: GPUAugment
    generator: torch.Generator
    objective: Callable[..., Any]  # (model, x1, x2) -> StepOutput: the method's step_loss
    runtime: Runtime
    shard: Shard | None = None  # data-parallel: this rank (realnet.training.distributed)
    ddp: torch.nn.Module | None = None  # data-parallel: DDP over the LossModule of ``model``
    freeze_prototypes_steps: int = 0  # SwAV: the prototypes do not learn before this step
    small_augment: GPUAugment | None = None  # SwAV's multi-crop: the small crops' augmentation
    small_crops: int = 0  # ... and how many per image

    def views(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The two augmented views of ``batch``, then SwAV's ``small_crops`` small ones if any,
        drawn after them from the same generator (so a run without them draws what it always
        drew); channels_last when the runtime asks for it. Data-parallel, ``batch`` is this
        rank's share and the views are its rows of the global batch's views."""
        of = None if self.shard is None else (self.shard.rows(len(batch) * self.shard.world)[0],
                                              len(batch) * self.shard.world)
        xs = [self.augment(batch, self.generator, of=of), self.augment(batch, self.generator, of=of)]
        xs += [self.small_augment(batch, self.generator, of=of) for _ in range(self.small_crops)]
        if self.runtime.channels_last:
            xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]
        return tuple(xs)

    def __call__(self, batch: torch.Tensor, k: int, lr_mult: float, momentum: float,
                 losses: list[torch.Tensor] | None = None) -> torch.Tensor:
        x1, x2, *small = self.views(batch)
        return self.update(x1, x2, k, lr_mult, momentum, losses, small=small)

    def update(self, x1: torch.Tensor, x2: torch.Tensor, k: int, lr_mult: float,
               momentum: float, losses: list[torch.Tensor] | None = None,
               small: list[torch.Tensor] | tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """The model side of the step from two ready views (and SwAV's ``small`` crops): forward,
        loss, backward, observe, optimiser step, predictor setting, EMA; the conventional
        baseline (:mod:`realnet.tools.baseline`) feeds it views from a DataLoader."""
        model, optimizer, rt = self.model, self.optimizer, self.runtime
        if model.prototypes is not None:
            model.prototypes.normalize_()  # SwAV: unit prototypes at every step
        with torch.autocast(device_type=rt.device.type, dtype=torch.bfloat16, enabled=rt.bf16):
            if self.ddp is None:
                out = self.objective(model, x1, x2, *small)
                full, z_online, z_target = out.loss, out.z_online, out.z_target
            else:
                full, z_online, z_target = self.ddp(x1, x2, *small)
        loss = full.detach() if self.shard is None else mean_over_ranks(full)
        if losses is not None:
            losses.append(loss)
        optimizer.zero_grad(set_to_none=True)
        full.backward()  # data-parallel: DDP averages the gradients over the ranks here
        if model.prototypes is not None and k < self.freeze_prototypes_steps:
            for p in model.prototypes.parameters():
                p.grad = None
        if self.shard is not None:  # the predictor observes the global batch
            z_online, z_target = gather_batch(z_online), gather_batch(z_target)
        model.predictor.observe(z_online, z_target)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * lr_mult
        optimizer.step()
        model.predictor.after_optimizer_step(k + 1, optimizer)
        model.update_target(momentum)
        return loss


def build_train_step(cfg: TrainConfig, spec: DatasetSpec, rt: Runtime,
                     backbone: BackboneFactory | None = None, shard: Shard | None = None) -> TrainStep:
    """The model (seeded by ``cfg.seed``, on ``rt.device``, channels_last when asked and safe:
    :func:`realnet.training.runtime.settle_channels_last`; the step's ``runtime`` says which), its
    optimiser (:func:`param_groups`), the augmentation and the augmentation generator (seeded by
    ``cfg.seed``) of a run, assembled into its :class:`TrainStep`. ``torch.compile`` is not
    applied here: call ``step.model.compile_encoders()`` when ``rt.compile`` (the trainer does so
    after restoring a checkpoint). ``backbone``: the trunk's factory (default: ``cfg.model``'s)."""
    aug_cfg = cfg.augment_config(spec.channels)
    augment = GPUAugment(aug_cfg, spec, out_size=cfg.data.image_size)
    m = cfg.method
    method = METHODS[m.name]
    small = None
    if method.small_crops(m):  # small crops: their own area range, blur kernel auto
        small = GPUAugment(replace(aug_cfg, crop_scale=m.swav_small_scale, blur_kernel=0), spec,
                           out_size=m.small_size(augment.out_size))
    model = build_ssl_model(cfg, spec, backbone).to(rt.device)
    rt = settle_channels_last(rt, cfg.train.channels_last, model)
    if shard is not None and cfg.train.sync_bn:
        convert_global_bn(model)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(param_groups(model, cfg), cfg.optim)
    generator = torch.Generator(device=rt.device)
    generator.manual_seed(cfg.seed * 1000 + AUG_SEED)
    objective = method.step_loss(m)
    ddp = None
    if shard is not None:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(
            LossModule(model, objective),
            device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    return TrainStep(model, optimizer, augment, generator, objective, rt, shard=shard, ddp=ddp,
                     freeze_prototypes_steps=method.frozen_head_steps(m),
                     small_augment=small, small_crops=method.small_crops(m))
