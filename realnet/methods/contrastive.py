"""The contrastive and clustering methods that BYOL / SimSiam / DirectPred are compared against.

- **SimCLR** (Chen et al. 2020): NT-Xent / InfoNCE over the ``2B`` L2-normalised projector
  outputs of a batch, :func:`nt_xent`,
  ``l_i = -log( exp(s(z_i, z_i+) / T) / sum_{k != i} exp(s(z_i, z_k) / T) )`` with ``z_i+`` the
  other view of the same image and the mean over all ``2B`` anchors; temperature ``T`` default 0.5
  (the CIFAR setting). Wang & Isola (2020) split it into alignment and uniformity; every run logs
  both (:mod:`realnet.eval.spectra`).
- **SwAV** (Caron et al. 2020): ``K`` prototypes (a bias-free linear layer whose rows are
  L2-normalised before every step), scores ``c_k^T z`` of the normalised projector outputs,
  codes ``q`` from :func:`sinkhorn` (``exp(scores / eps)``, ``eps = 0.05``, 3 iterations, no
  gradient; uniform marginals over the prototypes and the batch), and the swapped prediction
  loss :func:`swav_loss`, ``-1/2 sum (q_2 log softmax(scores_1 / T) + q_1 log softmax(scores_2 / T))``,
  ``T = 0.1``; the prototypes do not learn during the first ``method.swav_freeze_steps`` steps.
  Multi-crop (``method.swav_small_crops``): extra small views are predicted from the two
  full-size views' codes and never give codes themselves, :func:`swav_multicrop_loss`.

Both go through each view's forward pass on its own, like BYOL here (BatchNorm statistics per
view; SimCLR's reference code normalises the two views together), and run without a predictor
(``predictor.name = identity``) and without a target network. Under ``torchrun`` the negatives
(SimCLR) and the Sinkhorn normalisation (SwAV) span the global batch (:func:`gather_with_grad`,
all-reduced sums), so a data-parallel run optimises the single-process loss.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from realnet.methods.losses import StepOutput, at_least_float32
from analysis.errors import ConfigError

__all__ = ["nt_xent", "sinkhorn", "swav_loss", "swav_multicrop_loss", "Prototypes", "gather_with_grad",
           "simclr_step_loss", "swav_step_loss"]


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        n = grad.shape[0] // dist.get_world_size()
        r = dist.get_rank()
        return grad[r * n:(r + 1) * n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0 in rank order, differentiable (the gradient of
    this rank's rows is the sum over ranks of theirs); ``x`` itself in a single process."""
    return x if _world() == 1 else _GatherWithGrad.apply(x)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent over the ``2B`` views (module docstring); ``z1[i]`` and ``z2[i]`` are the two views
    of image ``i``. Computed in float32 or wider."""
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 2:
        raise ValueError(f"z1, z2: expected two (B, d) tensors of one shape with B >= 2, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if not temperature > 0:
        raise ConfigError(f"temperature={temperature!r} is invalid: allowed a number > 0")
    z = F.normalize(at_least_float32(torch.cat([z1, z2])), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positive)


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """SwAV's codes ``q`` (B, K) from prototype scores (B, K): ``Q = exp(scores / eps)``, then
    alternately rows (prototypes) scaled to ``1/K`` and columns (samples) to ``1/B`` of the total,
    ``iterations`` times; returned per sample (each row of ``q`` sums to 1, and the prototypes'
    totals approach ``B/K``). Under ``torchrun`` the sums span every rank's batch."""
    if scores.ndim != 2:
        raise ValueError(f"scores: expected (B, K), got {tuple(scores.shape)}")
    # scores are cosines (normalised outputs and prototypes), so exp(scores / eps) <= exp(1 / eps)
    q = torch.exp(at_least_float32(scores).T / epsilon)  # (K, B)
    world = _world()
    b = q.shape[1] * world
    k = q.shape[0]
    total = q.sum()
    if world > 1:
        dist.all_reduce(total)
    q /= total
    for _ in range(iterations):
        rows = q.sum(dim=1, keepdim=True)
        if world > 1:
            dist.all_reduce(rows)
        q /= rows
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).T


def swav_loss(scores1: torch.Tensor, scores2: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor,
              temperature: float = 0.1) -> torch.Tensor:
    """Swapped prediction: ``-1/2 mean_i [sum_k q2_ik log softmax(scores1_i / T)_k + sum_k q1_ik
    log softmax(scores2_i / T)_k]``."""
    ls1 = F.log_softmax(at_least_float32(scores1) / temperature, dim=1)
    ls2 = F.log_softmax(at_least_float32(scores2) / temperature, dim=1)
    return -0.5 * ((q2 * ls1).sum(dim=1).mean() + (q1 * ls2).sum(dim=1).mean())


def swav_multicrop_loss(scores: list[torch.Tensor], codes: list[torch.Tensor],
                        temperature: float = 0.1) -> torch.Tensor:
    """SwAV's swapped prediction over ``V`` views of which the first ``len(codes)`` (the full-size
    ones) have codes: ``mean_i mean_{v != i} [-mean_b sum_k q_i,bk log softmax(scores_v,b / T)_k]``,
    ``i`` over the coded views, ``v`` over all views (Caron et al. 2020, Eqn 1 with multi-crop).
    With two views and two codes it is :func:`swav_loss`."""
    if not 1 <= len(codes) <= len(scores) or len(scores) < 2:
        raise ValueError(f"swav_multicrop_loss: need 2 or more views and 1 to {len(scores)} codes, "
                         f"got {len(scores)} views and {len(codes)} codes")
    logp = [F.log_softmax(at_least_float32(s) / temperature, dim=1) for s in scores]
    terms = [-(q * logp[v]).sum(dim=1).mean() for i, q in enumerate(codes)
             for v in range(len(scores)) if v != i]
    return torch.stack(terms).mean()


class Prototypes(nn.Module):
    """SwAV's ``K`` prototypes: a bias-free ``Linear(d, K)`` whose rows are L2-normalised in
    place before every step (:meth:`normalize_`)."""

    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        self.layer = nn.Linear(dim, k, bias=False)
        self.normalize_()

    @torch.no_grad()
    def normalize_(self) -> None:
        self.layer.weight.copy_(F.normalize(self.layer.weight, dim=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layer(F.normalize(z, dim=1))


def simclr_step_loss(model, x1: torch.Tensor, x2: torch.Tensor, temperature: float) -> StepOutput:
    """SimCLR's loss of one step; the projector outputs of the global batch are the negatives."""
    z1, z2 = model.online(x1), model.online(x2)
    loss = nt_xent(gather_with_grad(z1), gather_with_grad(z2), temperature)
    z = at_least_float32(torch.stack([z1.detach(), z2.detach()]))
    return StepOutput(loss, z, z)


def swav_step_loss(model, x1: torch.Tensor, x2: torch.Tensor, *small: torch.Tensor,
                   temperature: float, epsilon: float, iterations: int) -> StepOutput:
    """SwAV's loss of one step: two full-size views, and the small crops of multi-crop if any
    (each view through the network on its own, as every method here)."""
    z1, z2 = model.online(x1), model.online(x2)
    s1, s2 = model.prototypes(z1), model.prototypes(z2)
    q1, q2 = sinkhorn(s1.detach(), epsilon, iterations), sinkhorn(s2.detach(), epsilon, iterations)
    if small:
        loss = swav_multicrop_loss([s1, s2, *(model.prototypes(model.online(x)) for x in small)],
                                   [q1, q2], temperature)
    else:
        loss = swav_loss(s1, s2, q1, q2, temperature)
    z = at_least_float32(torch.stack([z1.detach(), z2.detach()]))
    return StepOutput(loss, z, z)
