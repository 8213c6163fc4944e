"""A run's own parts from the Python API: a torch ``Dataset`` (:class:`realnet.data.torchdata.TorchData`)
instead of the config's dataset, and an ``nn.Module`` instead of the config's trunk.

:class:`OwnParts` marks the config so that ``config.json`` says what was used (``data.dataset =
"torch"``, ``model.arch = "custom"``) and gives the trainer and the evaluation the run's data and
trunk factory; without them it falls back to the config's own choices."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from realnet.nets.backbones import CUSTOM_ARCH, BackboneFactory, backbone_factory
from realnet.data.datasets import DatasetSpec
from realnet.data.pools import RunData, load_run_data
from realnet.data.torchdata import TorchData, torch_run_data

if TYPE_CHECKING:
    from realnet.config.train_config import TrainConfig

__all__ = ["OwnParts", "TORCH_DATASET"]

#: ``data.dataset`` of a run whose data came from the Python API.
TORCH_DATASET = "torch"


@dataclass(frozen=True)
class OwnParts:
    data: TorchData | None = None
    backbone: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.data is not None and not isinstance(self.data, TorchData):
            raise ValueError(f"data: must be a realnet.data.torchdata.TorchData, got {type(self.data).__name__}")
        if self.backbone is not None and not isinstance(self.backbone, nn.Module):
            raise ValueError(f"backbone: must be a torch.nn.Module, got {type(self.backbone).__name__}")

    def mark(self, cfg: "TrainConfig") -> "TrainConfig":
        """``cfg`` with ``data.dataset`` / ``model.arch`` naming the API's parts."""
        if self.data is not None:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=TORCH_DATASET))
        if self.backbone is not None:
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, arch=CUSTOM_ARCH))
        return cfg

    def run_data(self, cfg: "TrainConfig", device: torch.device) -> RunData:
        if self.data is not None:
            return torch_run_data(self.data, cfg.data, device)
        return load_run_data(cfg.data, cfg.train.batch_size, device)

    def backbone_factory(self, cfg: "TrainConfig", spec: DatasetSpec) -> BackboneFactory:
        return backbone_factory(cfg.model, spec.channels, cfg.data.image_size or spec.image_size,
                                self.backbone)
