"""The run-folder contract on the reading side: a run's resolved ``config.json`` read once into
typed sections (:class:`RunConfig`), with every default in this module.

The trainer (:mod:`realnet.training.trainer`) writes the whole resolved config; a run written
by an older version lacks the keys added since, and those take the defaults below, which are
realnet's own (``tests/test_runconfig.py`` pins each one to
:class:`realnet.config.train_config.TrainConfig`, so analysis never imports training code and
never repeats a default by hand). Analysis reads a run's settings only through these fields;
the full dict stays available as ``RunConfig.raw`` for grouping and reports. A value of the
wrong type is a :class:`~analysis.errors.ConfigError` naming the key.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError

__all__ = ["PredictorSettings", "MethodSettings", "OptimSettings", "ModelSettings", "EvalSettings",
           "TrainSettings", "DataSettings", "RunConfig", "as_run_config"]


@dataclass(frozen=True)
class PredictorSettings:
    """``predictor.*``: which predictor, its relative lr and weight decay, and the DirectSet
    knobs (THEORY.md section 3)."""

    name: str = "directpred"
    symmetrize: bool = False
    lr_ratio: float = 1.0
    weight_decay: float | None = None
    rho: float = 0.3
    eps: float = 0.1
    floor: float = 1e-4
    alpha: float = 0.5
    cj: float = 0.0
    freq: int = 1
    partitions: int = 1
    feature_blocks: int = 1
    eps_copy: float = 0.25


@dataclass(frozen=True)
class MethodSettings:
    """``method.*``: BYOL or SimSiam, the loss, its symmetrisation and the EMA."""

    name: str = "byol"
    loss: str = "cosine"
    symmetric: bool = True
    ema: float = 0.996
    ema_schedule: str = "constant"
    stop_grad: bool = True


@dataclass(frozen=True)
class OptimSettings:
    """``optim.*``: the optimiser, its lr, momentum, weight decay and schedule."""

    name: str = "sgd"
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 4e-4
    schedule: str = "constant"
    warmup_steps: int = 0


@dataclass(frozen=True)
class ModelSettings:
    """``model.*`` as analysis needs it: the trunk and the projector's output dimension."""

    arch: str = "resnet18"
    width: float = 1.0
    proj_dim: int = 128


@dataclass(frozen=True)
class TrainSettings:
    """``train.*`` as analysis needs it: the run's length (one of the two is set)."""

    steps: int | None = None
    epochs: float | None = field(default=100.0, metadata={"optional": True})


@dataclass(frozen=True)
class DataSettings:
    """``data.*`` as analysis needs it: which dataset."""

    dataset: str = "cifar10"


@dataclass(frozen=True)
class EvalSettings:
    """``eval.*`` as analysis needs it: the collapse rule."""

    collapse_rank: float = 1.5
    collapse_std_fraction: float = 0.1


_SECTIONS = {"predictor": PredictorSettings, "method": MethodSettings, "optim": OptimSettings,
             "model": ModelSettings, "eval": EvalSettings, "train": TrainSettings,
             "data": DataSettings}


def _fits(v: Any, default: Any) -> bool:
    """Whether ``v`` has the type of the field whose default is ``default`` (a float field whose
    default is None is optional)."""
    if isinstance(default, bool):
        return isinstance(v, bool)
    if isinstance(default, int):
        return isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, str):
        return isinstance(v, str)
    if v is None:
        return default is None
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _typed(section: str, cls: type, given: Any) -> Any:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"config: {section} must be a table, got {type(given).__name__}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in given:
            continue  # a run written before the key existed: the default
        v = given[f.name]
        if not (_fits(v, f.default) or (v is None and f.metadata.get("optional"))):
            raise ConfigError(f"config: {section}.{f.name}={v!r} is invalid: expected the type of "
                              f"its default {f.default!r}")
        values[f.name] = v if (v is None or not isinstance(f.default, float)) else float(v)
    return cls(**values)


@dataclass(frozen=True)
class RunConfig:
    """A run's settings as analysis reads them (module docstring); ``raw`` is config.json."""

    seed: int | None
    predictor: PredictorSettings
    method: MethodSettings
    optim: OptimSettings
    model: ModelSettings
    eval: EvalSettings
    train: TrainSettings
    data: DataSettings
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        """The typed view of a resolved config (missing keys: the defaults; a wrong type: a
        ConfigError naming the key)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"config: expected a table of sections, got {type(d).__name__}")
        seed = d.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(f"config: seed={seed!r} is invalid: expected an integer")
        return cls(seed=seed, raw=d, **{name: _typed(name, sec, d.get(name))
                                        for name, sec in _SECTIONS.items()})

    @property
    def predictor_weight_decay(self) -> float:
        """The predictor's weight decay: its own, else the optimiser's."""
        wd = self.predictor.weight_decay
        return self.optim.weight_decay if wd is None else wd


def as_run_config(cfg: "RunConfig | Mapping[str, Any]") -> RunConfig:
    """``cfg`` itself, or the typed view of a config dict."""
    return cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg)
