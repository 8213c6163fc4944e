"""Data-parallel training under ``torchrun`` (``torch.nn.parallel.DistributedDataParallel``).

``torchrun --nproc_per_node N -m realnet train ...`` starts N processes; each is one rank
(:class:`Shard`, read from torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``). The run's
``train.batch_size`` stays the *global* batch, so a run under torchrun is the same experiment as
one process:

- every rank draws the same global batch and the same augmentation parameters for all of it
  (the generators are seeded alike) and keeps rows ``[rank * b, (rank + 1) * b)`` with
  ``b = batch_size / N``;
- DDP averages the gradients of the per-rank mean losses, which is the gradient of the global
  mean loss;
- the detached projector outputs are all-gathered before ``predictor.observe``, so DirectPred's
  ``F`` (and every predictor's running statistics) is the global batch's and every rank sets the
  same ``Wp``; the logged loss is the mean over ranks;
- ``train.sync_bn=true`` replaces every BatchNorm by :class:`GlobalBatchNorm`, whose batch
  statistics are those of the global batch (an all-gather of each share's mean and variance, and
  batch norm's closed-form backward with its two sums all-reduced; works with gloo on CPU and
  NCCL on CUDA, where torch's SyncBatchNorm needs a GPU). Without it each rank normalises by its own ``b`` images, as DDP does by default,
  and the run differs from a single process by that alone (and DDP copies rank 0's running
  statistics to the others at every forward);
- rank 0 alone takes the folder lock and writes config, logs, spectra, checkpoints and the final
  evaluation; every rank resumes from the same checkpoint; a stop signal on any rank is shared
  (all-reduced) so that every rank stops after the same step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn.functional as Fn
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["Shard", "shard_from_env", "init_shard", "close_shard", "GlobalBatchNorm", "convert_global_bn",
           "gather_batch", "mean_over_ranks", "any_rank", "LossModule"]


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel run."""

    rank: int
    world: int
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, global_batch: int) -> tuple[int, int]:
        b = global_batch // self.world
        return self.rank * b, (self.rank + 1) * b


def shard_from_env() -> Shard | None:
    """The :class:`Shard` torchrun describes in the environment, or None for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return Shard(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_shard(shard: Shard, device: torch.device) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA) unless already joined."""
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(hours=2))


def _combine_stats(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global per-channel ``(mean, biased var, count)`` of ``x`` over every rank's share: each
    rank's mean and variance, all-gathered and combined without cancellation,
    ``var = sum_r n_r (var_r + (mean_r - mean)^2) / n`` (the raw-moment form
    ``E[x^2] - mean^2`` loses the variance of near-constant channels in float32)."""
    c = x.shape[1]
    n_local = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
    local = torch.cat([x.mean(dims), x.var(dims, unbiased=False), n_local])
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local)
    stats = torch.stack(parts)
    means, vars_, counts = stats[:, :c], stats[:, c:2 * c], stats[:, 2 * c:]
    n = counts.sum()
    mean = (counts * means).sum(0) / n
    return mean, (counts * (vars_ + (means - mean) ** 2)).sum(0) / n, n


def close_shard() -> None:
    """Leave the process group (a rank that is done may exit while rank 0 still evaluates)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class _GlobalBatchNormFn(torch.autograd.Function):
    """Normalisation by global statistics with the closed-form backward of batch norm (as torch's
    SyncBatchNorm): ``dx = w / sigma (g - S_g / n - xhat S_gx / n)`` with ``S_g = sum g`` and
    ``S_gx = sum g xhat`` all-reduced over the ranks; the weight and bias get this rank's sums
    (DDP adds the ranks'). The sums are accumulated in float64."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, n):
        shape = [1, -1] + [1] * (x.dim() - 2)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.n = n
        y = xhat if weight is None else xhat * weight.view(shape) + bias.view(shape)
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, invstd = ctx.saved_tensors
        shape = [1, -1] + [1] * (x.dim() - 2)
        dims = [0] + list(range(2, x.dim()))
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        g = g.to(x.dtype)
        gd = g.double()
        local = torch.cat([gd.sum(dims), (gd * xhat).sum(dims)])
        sums = local.clone()
        dist.all_reduce(sums)
        c = x.shape[1]
        s_g, s_gx = (sums[:c] / ctx.n).to(x.dtype), (sums[c:] / ctx.n).to(x.dtype)
        scale = invstd if weight is None else invstd * weight
        dx = scale.view(shape) * (g - s_g.view(shape) - xhat * s_gx.view(shape))
        dw = db = None
        if weight is not None:
            dw, db = local[c:].to(weight.dtype), local[:c].to(weight.dtype)
        return dx, dw, db, None, None, None


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training-mode statistics are those of the batch over all ranks
    (:func:`_combine_stats`, :class:`_GlobalBatchNormFn`); in eval mode, or in a single process,
    it is ``F.batch_norm``. Running statistics use the unbiased global variance, as
    ``nn.BatchNorm`` does. The statistics are computed in float64, as torch's CPU batch norm
    accumulates them: with float32 statistics the gradients of a width-0.125 ResNet-18 on digits
    were off by 1e-3 relative (measured against float64), against 3e-6 for ``nn.BatchNorm2d``."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f"GlobalBatchNorm: expected 2-5 dimensions, got {x.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return Fn.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                 self.training or not self.track_running_stats, self.momentum or 0.0,
                                 self.eps)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16 in: normalised in float32
        dims = [0] + list(range(2, x.dim()))
        with torch.no_grad():
            mean, var, n = _combine_stats(xf.detach().double(), dims)
            invstd = torch.rsqrt(var + self.eps).to(xf.dtype)
            mean = mean.to(xf.dtype)
            if self.track_running_stats and self.running_mean is not None:
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / (n - 1)).to(self.running_var.dtype), alpha=m)
                self.num_batches_tracked.add_(1)
        w = None if self.weight is None else self.weight.to(xf.dtype)
        b = None if self.bias is None else self.bias.to(xf.dtype)
        y = _GlobalBatchNormFn.apply(xf, w, b, mean, invstd, float(n))
        return y.to(x.dtype)


def convert_global_bn(module: nn.Module) -> nn.Module:
    """Every ``nn.BatchNorm*`` of ``module`` replaced by a :class:`GlobalBatchNorm` with the same
    options, parameters and buffers (in place where possible; returns the module)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        with torch.no_grad():
            if module.affine:
                new.weight.copy_(module.weight)
                new.bias.copy_(module.bias)
                new.weight.requires_grad_(module.weight.requires_grad)  # a frozen target stays frozen
                new.bias.requires_grad_(module.bias.requires_grad)
            if module.track_running_stats:
                new.running_mean.copy_(module.running_mean)
                new.running_var.copy_(module.running_var)
                new.num_batches_tracked.copy_(module.num_batches_tracked)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_global_bn(child))
    return module


def gather_batch(z: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """All ranks' ``z`` concatenated along ``dim`` in rank order (no gradient)."""
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.contiguous())
    return torch.cat(parts, dim=dim)


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    y = x.detach().clone().float()
    dist.all_reduce(y)
    return y / dist.get_world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class LossModule(nn.Module):
    """The SSL model's loss as one module, so that DDP sees the whole forward pass:
    ``forward(x1, x2, *small) -> (loss, z_online, z_target)`` with the run's objective
    (:data:`realnet.methods.registry.METHODS`' ``step_loss``; ``small``: SwAV's small crops)."""

    def __init__(self, model: nn.Module, objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, *small: torch.Tensor):
        out = self.objective(self.model, x1, x2, *small)
        return out.loss, out.z_online, out.z_target
