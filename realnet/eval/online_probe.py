"""The online linear probe (``eval.online_probe``): a linear classifier trained during SSL on the
trunk's detached features, as solo-learn's online linear evaluation, so a run's accuracy is
visible while it trains without the cost of the final probe.

At every optimiser step, after the SSL step: a batch of ``train.batch_size`` labelled training
images, drawn uniformly with replacement by a generator of its own (seeded from the run's seed), is
normalised without augmentation and passed through the trunk in eval mode under ``no_grad`` (so
the trunk's batch-norm statistics and the SSL run are untouched: a run with the probe is
bit-identical to one without); a ``BatchNorm1d`` without affine parameters then a linear layer take
one SGD step (lr 0.1, momentum 0.9) on the cross-entropy. ``metrics.jsonl`` logs the training
batches' top-1 over each log window (``online_probe_top1``); the final summary adds its test-set
top-1 (``online_probe_test_top1``). Rank 0 trains it alone under torchrun. Its weights, optimiser
state, generator and window counts are in the checkpoint, so a resumed run continues it exactly.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from realnet.data.augment import GPUAugment
from realnet.eval.evaluate import extract_features

__all__ = ["OnlineProbe", "ONLINE_PROBE_LR", "ONLINE_PROBE_MOMENTUM"]

ONLINE_PROBE_LR, ONLINE_PROBE_MOMENTUM = 0.1, 0.9


class OnlineProbe:
    """A linear classifier on detached trunk features, one SGD step per training step."""

    def __init__(self, feat_dim: int, num_classes: int, seed: int, device: torch.device) -> None:
        self.head = nn.Sequential(nn.BatchNorm1d(feat_dim, affine=False),
                                  nn.Linear(feat_dim, num_classes)).to(device)
        self.optimizer = torch.optim.SGD(self.head.parameters(), lr=ONLINE_PROBE_LR,
                                         momentum=ONLINE_PROBE_MOMENTUM)
        self.generator = torch.Generator().manual_seed(seed)
        self.device = device
        self.correct = torch.zeros((), dtype=torch.long, device=device)  # this log window
        self.seen = 0

    def step(self, backbone: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             augment: GPUAugment, batch_size: int) -> None:
        """One SGD step on a batch drawn from the labelled ``images`` (uint8) / ``labels``, its
        trunk features taken as the evaluation takes them (:func:`realnet.eval.evaluate.extract_features`)."""
        idx = torch.randint(len(images), (batch_size,), generator=self.generator)
        feats = extract_features(backbone, images[idx.to(images.device)], augment,
                                 batch_size=batch_size, device=self.device)
        y = labels[idx.to(labels.device)].to(self.device)
        self.head.train()
        logits = self.head(feats)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += len(y)

    def window_top1(self) -> float | None:
        """Top-1 (percent) on the training batches since the last call; None before any."""
        if self.seen == 0:
            return None
        top1 = 100.0 * float(self.correct) / self.seen
        self.correct.zero_()
        self.seen = 0
        return top1

    @torch.no_grad()
    def score(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        """Top-1 (percent) of the head on trunk ``features`` (the test split's, which the final
        evaluation has already extracted: :func:`realnet.eval.evaluate.evaluate_model`)."""
        self.head.eval()
        pred = self.head(features.to(self.device)).argmax(1)
        return 100.0 * float((pred == labels.to(self.device)).sum()) / max(len(labels), 1)

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "correct": int(self.correct),
                "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.correct.fill_(int(state["correct"]))
        self.seen = int(state["seen"])
