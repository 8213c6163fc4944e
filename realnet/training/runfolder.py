"""The trainer's side of the run-folder contract: claiming a folder for a config
(``config.json``), checking on a resume that the data and the config are the run's, extending a
run to a new length, and ``run.json`` (what ran where). Analysis reads the same files through
:mod:`analysis.runs` and :mod:`analysis.runconfig`."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from analysis.errors import ConfigError
from analysis.runs import CONFIG, RUN_INFO, SUMMARY, JsonlLog, read_json, write_json_atomic
from realnet.config.diff import config_diff, inert_keys, result_changes
from realnet.config.train_config import TrainConfig, config_to_dict, read_run_config
from realnet.data.datasets import input_facts
from realnet.data.pools import BatchOrder, RunData
from realnet.training.checkpoint import save_checkpoint
from realnet.training.distributed import Shard
from realnet.training.runtime import Runtime, environment

__all__ = ["EXTENDABLE_KEYS", "claim_folder", "refuse_other_data", "extend_run", "write_run_info"]

#: Keys that may change on a resume: the run's length (:func:`extend_run`).
EXTENDABLE_KEYS = ("train.steps", "train.epochs")


def claim_folder(cfg: TrainConfig, out: Path) -> None:
    """Write config.json, or check that the one there is this config (a resume); keys of
    :data:`realnet.config.diff.RESULT_NEUTRAL_KEYS` may differ (config.json then takes
    the new values), and :data:`EXTENDABLE_KEYS` (the run is extended). Called only once training
    can start, so a start that fails before (data missing) claims nothing."""
    path = out / CONFIG
    if path.exists():
        old = read_run_config(path)
        diff = [k for k in result_changes(old, cfg) if k not in EXTENDABLE_KEYS]
        if diff:
            raise ConfigError(f"--out {str(out)!r} holds a run with a different config (keys: "
                             f"{', '.join(diff)}); use a new --out folder, or the same config to "
                             "resume it (train.steps / train.epochs may grow: the run is extended)")
        if config_diff(old, cfg):
            write_json_atomic(path, config_to_dict(cfg))
    else:
        write_json_atomic(path, config_to_dict(cfg))


def refuse_other_data(out: Path, now: dict[str, Any]) -> None:
    """A run resumes on the images it started with (``now``: :func:`realnet.data.datasets.data_identity`,
    as run.json recorded it at the start)."""
    before = (read_json(out / RUN_INFO) or {}).get("data_identity")
    if isinstance(before, dict) and before != now:
        raise ConfigError(f"{str(out)!r} started on other data than data.root now holds "
                          f"({before} then, {now} now); a run trains on one dataset: restore "
                          "the images or start a new run folder")


def extend_run(out: Path, ckpt_path: Path, metrics_log: JsonlLog, state: dict[str, Any], K: int,
               main: bool = True) -> None:
    """A run resumed with another length ``K`` (``train.steps`` / ``train.epochs``): from its
    checkpoint on, the schedules (lr, EMA momentum) end at ``K`` (the steps taken keep theirs;
    with constant schedules, the default, the run equals one trained to ``K`` from the start). A
    finished run's summary is kept as ``summary_step_XXXXXXX.json``; the metrics log gets a line
    ``{"step", "schedule_end": {"from", "to"}}``; the checkpoint ``state`` is rewritten with the
    new length at once, so the change is made once. A length below the step reached is refused."""
    old_K, step = int(state["total_steps"]), int(state["step"])
    if K < step:
        raise ConfigError(f"train.steps={K} is below the step {step} the run in {str(out)!r} "
                          "reached: a run is extended, never shortened; use a new --out")
    if not main:
        return
    summary, kept = out / SUMMARY, out / f"summary_step_{old_K:07d}.json"
    moved = summary.exists()
    if moved:
        os.replace(summary, kept)
    metrics_log.truncate_after(step)
    metrics_log.write({"step": step, "schedule_end": {"from": old_K, "to": K}})
    state["complete"] = False
    state["total_steps"] = K
    save_checkpoint(ckpt_path, state)
    print(f"note: extending the run in {str(out)!r} from {old_K} to {K} steps at step {step}: the "
          f"lr and EMA schedules now end at step {K}"
          + (f"; the summary of step {old_K} is kept as {kept.name}" if moved else ""),
          file=sys.stderr)


def write_run_info(out: Path, cfg: TrainConfig, rt: Runtime, data: RunData, order: BatchOrder,
                   K: int, aug_cfg: Any, identity: dict[str, Any], shard: Shard | None = None) -> None:
    """``run.json``: the device and numerics in force, every library's version, the schedule's
    length, the data (sizes, input facts, identity) and the keys without effect."""
    info = {
        "device": str(rt.device),
        "device_name": (torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda"
                        else "cpu"),
        "bf16": rt.bf16, "channels_last": rt.channels_last, "compile": rt.compile,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "environment": environment(),
        "total_steps": K, "steps_per_epoch": order.steps_per_epoch,
        "n_ssl": len(data.ssl), "n_train": len(data.train_x), "n_test": len(data.test_x),
        "data": data.spec.name, "pool": type(data.ssl).__name__, "channels": data.spec.channels,
        "input": input_facts(data.spec),
        "processes": 1 if shard is None else shard.world, "sync_bn": bool(shard and cfg.train.sync_bn),
        "inert_keys": inert_keys(cfg),
        "data_identity": identity,
        "augment": json.loads(json.dumps(dataclasses.asdict(aug_cfg))),
    }
    write_json_atomic(out / RUN_INFO, info)
