"""Comparing configs: which keys differ (:func:`config_diff`), which of them can change a run's
result (:func:`result_changes`; :data:`RESULT_NEUTRAL_KEYS` and the keys inert in both cannot),
and which keys a run ignores (:func:`inert_keys`). The trainer uses them to accept or refuse a
resume, the sweep runner to tell its runs apart from other configs' runs."""
from __future__ import annotations

import dataclasses
from typing import Any

from realnet.config.train_config import TrainConfig, config_to_dict
from realnet.methods.registry import METHODS

__all__ = ["RESULT_NEUTRAL_KEYS", "inert_keys", "result_changes", "config_diff"]


def inert_keys(cfg: TrainConfig) -> list[str]:
    """Config keys that have no effect on this run: predictor knobs its predictor does not take
    (``predictor.eps`` of a linear predictor), DirectPred's ``eps`` when the c_j ablation replaces
    it (``predictor.cj != 0``), the seeds of one partition or one feature block, and the keys of the other methods (the SwAV knobs of a BYOL run,
    the EMA of a SimSiam run). Written to ``run.json``; reports leave them out of labels."""
    from realnet.methods.predictors import predictor_knobs

    p = cfg.predictor
    used = set(predictor_knobs(p.name)) | {"name", "lr_ratio", "weight_decay"}
    out = [f"predictor.{f.name}" for f in dataclasses.fields(p) if f.name not in used]
    if p.name == "directpred" and p.cj != 0.0:
        out.append("predictor.eps")
    if p.partitions == 1:  # one partition is the plain predictor: no hyperplanes are drawn
        out.append("predictor.partition_seed")
    if p.feature_blocks == 1:  # one block is the identity order: no permutation is drawn
        out.append("predictor.block_seed")
    method = METHODS[cfg.method.name]
    reads = set(method.keys) - set(method.unused_keys(cfg.method))
    out += [f"method.{f.name}" for f in dataclasses.fields(cfg.method)
            if f.name != "name" and f.name not in reads]
    return sorted(set(out))


#: Config keys that cannot change a run's result (where the data lives, whether it may be fetched,
#: whether it is streamed, whether TensorBoard also logs):
#: a resume with other values is accepted and config.json takes the new ones.
RESULT_NEUTRAL_KEYS = ("data.root", "data.download", "data.stream", "data.workers", "log.tensorboard",
                       "log.keep_checkpoints")


def result_changes(a: TrainConfig, b: TrainConfig) -> list[str]:
    """The keys of :func:`config_diff` that can change a run's result: all but
    :data:`RESULT_NEUTRAL_KEYS` and the keys inert in both configs (:func:`inert_keys`; so a run
    saved before a default of an inert key changed still matches its config)."""
    inert = set(inert_keys(a)) & set(inert_keys(b))
    return [k for k in config_diff(a, b) if k not in RESULT_NEUTRAL_KEYS and k not in inert]


def config_diff(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{prefix}{k}.")
        elif x != y:
            out.append(prefix.rstrip("."))

    walk(config_to_dict(a), config_to_dict(b), "")
    return out
