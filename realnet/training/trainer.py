"""The training loop of a real BYOL / SimSiam run (THEORY.md section 4), top to bottom.

One step (optimiser step ``k``, counted from 0; steps 2-6 are :class:`TrainStep`, the one code
path that the trainer runs and :mod:`realnet.tools.bench` times):

1. batch indices from the epoch's permutation (a generator seeded by ``(seed, epoch)``; the
   dataset stays on the device as uint8);
2. two views by :class:`realnet.data.augment.GPUAugment` from a generator on the device;
3. forward both views, the method's loss (the ``step_loss`` of its :data:`realnet.methods.registry.METHODS` entry), backward;
4. ``predictor.observe`` with the detached projector outputs (before the optimiser step);
5. lr from the schedule, optimiser step, ``predictor.after_optimizer_step(k + 1)`` (DirectPred
   sets ``Wp`` here, section 3);
6. EMA update of the target with the momentum of the schedule.

Around it: the kNN monitor every ``eval.knn_every`` steps, spectra snapshots
(:mod:`realnet.eval.spectra`) every ``log.spectra_every`` steps and at steps 0 and the last, a
``metrics.jsonl`` line every ``log.every`` steps, atomic checkpoints every ``log.checkpoint_every``
steps and at the end. A run restarted with the same command resumes from its last checkpoint; on
CPU it ends with exactly the numbers of an uninterrupted run (every generator state, the step
counter and the loss window are in the checkpoint; the data order is a function of the step).

A NaN/inf loss or weight stops the run with :class:`NonFiniteError` naming the step; no
checkpoint is ever written from a non-finite state, so the last good one is kept.

End of run: kNN and linear probe on frozen trunk features (labelled train -> test, final-epoch
accuracy), the same probe on a randomly initialised trunk of the same seed, the collapse rule of
:class:`realnet.config.train_config.EvalConfig`, and ``summary.json``.

Run folder::

    config.json  run.json  metrics.jsonl  spectra.jsonl  spectra/step_*.npz
    checkpoints/last.pt  summary.json  (eval.json from ``python -m realnet eval``)
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from analysis.jsonio import ensure_writable
from analysis.process import StopSignals
from analysis.runs import (METRICS, SPECTRA_LOG, SUMMARY, JsonlLog,
                           folder_lock, is_result_summary, read_json, stale_temporaries,
                           write_json_atomic)

from realnet.eval import spectra
from realnet.training.clock import Clock
from realnet.training.failures import Interrupted, NonFiniteError, numerical_failure_is_divergence
from realnet.training.checkpoint import (CHECKPOINT, all_finite, capture_rng_state, load_model_state,
                                         keep_checkpoint, load_checkpoint, restore_rng_state,
                                         save_checkpoint)
from realnet.config.train_config import TrainConfig
from realnet.nets.backbones import BackboneFactory
from realnet.data.datasets import data_identity
from realnet.data.pools import RunData
from realnet.training.distributed import Shard, any_rank, close_shard, init_shard, shard_from_env
from realnet.eval.evaluate import evaluate_model, knn_monitor
from realnet.eval.online_probe import OnlineProbe
from realnet.nets.ssl_model import SSLModel
from realnet.methods.ema import momentum_at
from realnet.training.optim import lr_at
from realnet.training.parts import OwnParts
from realnet.training.progress import make_progress, phase, progress_mode
from realnet.training.runtime import Runtime, apply_thread_policy, resolve_runtime
from realnet.training.runfolder import claim_folder, extend_run, refuse_other_data, write_run_info
from realnet.data.torchdata import TorchData
from realnet.data.pools import BatchOrder
from realnet.training.step import TrainStep, build_train_step, total_steps
from realnet.training.tblog import TensorBoardLog, tensorboard_writer_class
from analysis.errors import ConfigError

__all__ = ["train"]

#: Offsets of the seeds of the loop's own generators (kept apart from the model seed and from
#: the augmentation's, :data:`realnet.training.step.AUG_SEED`).
_PROBE_SEED, _PROBE_PICK_SEED, _ONLINE_PROBE_SEED = 2, 3, 4


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
@dataclass
class _Run:
    """What one invocation of :func:`train` works with: built by :func:`_setup`, advanced by the
    loop (``step``, the loss ``window``, the ``pending`` losses not yet read back, the clocks)."""

    cfg: TrainConfig
    out: Path
    rt: Runtime
    data: RunData
    order: BatchOrder
    K: int
    step_fn: TrainStep
    backbone: BackboneFactory
    probe_images: torch.Tensor
    t_start: float
    metrics_log: JsonlLog
    spectra_log: JsonlLog
    ckpt_path: Path
    step: int = 0
    window: list[float] = field(default_factory=list)
    pending: list[torch.Tensor] = field(default_factory=list)
    elapsed_before: float = 0.0
    train_time: float = 0.0
    last_spectra: dict[str, Any] | None = None
    tb: TensorBoardLog | None = None
    shard: Shard | None = None
    online: OnlineProbe | None = None

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder (rank 0, or the only process)."""
        return self.shard is None or self.shard.main

    def log_metrics(self, line: dict[str, Any]) -> None:
        self.metrics_log.write(line)
        if self.tb is not None:
            self.tb.metrics(line)

    @property
    def model(self) -> SSLModel:
        return self.step_fn.model

    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"augment": self.step_fn.generator}

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start


def _setup(cfg: TrainConfig, out: Path, own: OwnParts, shard: Shard | None,
           progress: str = "off") -> _Run:
    """Folder, data, schedule length and the step's components (nothing restored yet)."""
    rt = resolve_runtime(cfg)
    if shard is not None:  # one device per rank; DDP and torch.compile are not combined here
        if rt.device.type == "cuda":
            rt = dataclasses.replace(rt, device=torch.device("cuda", shard.local_rank), compile=False)
            torch.cuda.set_device(rt.device)
        init_shard(shard, rt.device)
    apply_thread_policy(cfg.train.threads, rt.device)
    t_start = time.perf_counter()
    shown = progress if shard is None or shard.main else "off"
    with phase(f"loading {cfg.data.dataset}", shown):
        data = own.run_data(cfg, rt.device)
    order = BatchOrder(len(data.ssl), cfg.train.batch_size, cfg.seed)
    K = total_steps(cfg, order.steps_per_epoch)
    if cfg.optim.warmup_steps >= K:
        raise ConfigError(f"optim.warmup_steps={cfg.optim.warmup_steps} is invalid: allowed "
                         f"[0, {K}) (the run has {K} steps)")
    backbone = own.backbone_factory(cfg, data.spec)
    step_fn = build_train_step(cfg, data.spec, rt, backbone, shard)
    rt = step_fn.runtime  # channels_last settled for this trunk
    pick = torch.randperm(len(data.ssl), generator=torch.Generator().manual_seed(
        cfg.seed * 1000 + _PROBE_PICK_SEED))[:cfg.log.probe_size]
    probe_images = data.ssl.take(pick)
    ckpt_path = out / CHECKPOINT
    if shard is None or shard.main:
        claim_folder(cfg, out)  # training can start: claim the folder
        for stale in stale_temporaries(out):  # a killed writer's leftovers (we hold the lock)
            stale.unlink(missing_ok=True)
    return _Run(cfg, out, rt, data, order, K, step_fn, backbone, probe_images, t_start,
                JsonlLog(out / METRICS), JsonlLog(out / SPECTRA_LOG), ckpt_path, shard=shard,
                online=_online_probe(cfg, data, step_fn, rt, shard))


def _online_probe(cfg: TrainConfig, data: RunData, step_fn: TrainStep, rt: Runtime,
                  shard: Shard | None) -> OnlineProbe | None:
    """The run's online probe (``eval.online_probe``; rank 0 only, labelled data only)."""
    if not cfg.eval.online_probe or not (shard is None or shard.main):
        return None
    if not data.labelled:
        print("note: eval.online_probe: the data has no labels; no online probe", file=sys.stderr)
        return None
    feat_dim = step_fn.model.online.projector.net[0].in_features
    return OnlineProbe(feat_dim, data.spec.num_classes, cfg.seed * 1000 + _ONLINE_PROBE_SEED, rt.device)


def _resume(run: _Run) -> dict[str, Any] | None:
    """Restore the last checkpoint if there is one; returns the summary of a finished run. Then
    drop what an interrupted invocation logged after its last checkpoint (all of it when there is
    none, so a resumed run's logs equal an uninterrupted run's), write run.json and compile."""
    has_ckpt = run.ckpt_path.exists()
    identity = data_identity(run.cfg.data.dataset, run.cfg.data.root)  # hashes a folder: once
    if has_ckpt:
        refuse_other_data(run.out, identity)
        state = load_checkpoint(run.ckpt_path)  # CPU: RNG states must stay CPU tensors
        load_model_state(run.model, state, run.ckpt_path)
        run.step_fn.optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"], run.generators)
        run.step, run.window = state["step"], list(state["loss_window"])
        if run.online is not None and "online_probe" in state:
            run.online.load_state_dict(state["online_probe"])
        run.elapsed_before, run.train_time = state["elapsed_s"], state["train_time_s"]
        threads = state.get("threads")
        if run.rt.device.type == "cpu" and threads is not None and threads != torch.get_num_threads():
            print(f"note: resumed with {torch.get_num_threads()} CPU threads, the checkpoint was written "
                  f"with {threads}: the run continues exactly, but its float reductions may differ in the "
                  "last bits from an uninterrupted run (bit-identical only at the same thread count)",
                  file=sys.stderr)
        if state["total_steps"] != run.K:
            extend_run(run.out, run.ckpt_path, run.metrics_log, state, run.K, run.main)
        if state["data_position"] != list(run.order.position(run.step)):
            raise RuntimeError(f"{run.ckpt_path}: data position {state['data_position']} does "
                               f"not match step {run.step}; the SSL pool changed since it was "
                               "written")
        if state["complete"]:
            summary = read_json(run.out / SUMMARY)
            if is_result_summary(summary):
                return summary  # else (missing, corrupt or empty): the final evaluation runs again
    if run.main:
        run.metrics_log.truncate_after(run.step if has_ckpt else -1)
        run.spectra_log.truncate_after(run.step if has_ckpt else -1)
        write_run_info(run.out, run.cfg, run.rt, run.data, run.order, run.K,
                        run.step_fn.augment.cfg, identity, run.shard)
    if run.rt.compile and run.shard is None:
        run.model.compile_encoders()
    return None


def _checkpoint(run: _Run, final: bool = False) -> None:
    """Atomic checkpoint of the current step; refused (NonFiniteError) for non-finite weights."""
    bad = all_finite(run.model)
    if bad is not None:
        raise NonFiniteError(run.step, f"weight {bad!r}")
    save_checkpoint(run.ckpt_path, {
        "step": run.step, "total_steps": run.K, "complete": final,
        "data_position": list(run.order.position(run.step)),
        "model": run.model.state_dict(), "optimizer": run.step_fn.optimizer.state_dict(),
        "rng": capture_rng_state(run.generators), "loss_window": list(run.window),
        "elapsed_s": run.elapsed(), "train_time_s": run.train_time,
        "threads": torch.get_num_threads(),
        **({"online_probe": run.online.state_dict()} if run.online is not None else {}),
    })


def _snapshot(run: _Run) -> dict[str, Any]:
    """Spectra snapshot of the current step (:mod:`realnet.eval.spectra`), written to the run folder."""
    cfg, model = run.cfg, run.model
    views = spectra.probe_views(model.online.backbone, model.online.projector, run.probe_images,
                                run.step_fn.augment, seed=cfg.seed * 1000 + _PROBE_SEED,
                                batch_size=cfg.eval.batch_size)
    F = model.predictor.correlation()
    Wp = model.predictor.weight_matrix()
    snap = spectra.snapshot(run.step, views,
                            F=None if F is None else F.detach().double().cpu().numpy(),
                            Wp=None if Wp is None else Wp.detach().double().cpu().numpy(),
                            save_matrices=cfg.log.save_matrices)
    line = spectra.write_snapshot(run.out, snap)
    if run.tb is not None:
        run.tb.spectra(snap, line)
    return line


def _flush(run: _Run) -> None:
    """Read pending losses back; raise NonFiniteError at the first non-finite one."""
    if not run.pending:
        return
    vals = torch.stack(run.pending).float().cpu().tolist()
    first = run.step - len(run.pending) + 1
    run.pending.clear()
    for i, v in enumerate(vals):
        if not math.isfinite(v):
            raise NonFiniteError(first + i, f"loss ({v})")
    run.window.extend(vals)


def _one_step(run: _Run) -> tuple[float, float]:
    """Optimiser step ``run.step`` (0-based) with the schedules' lr multiplier and EMA momentum
    (returned); advances ``run.step``. A failure inside the step (e.g. an eigh on a NaN
    correlation) first reports a non-finite loss of this step, if there is one."""
    cfg, k = run.cfg, run.step
    rows = None if run.shard is None else run.shard.rows(cfg.train.batch_size)
    batch = run.data.ssl.batch(run.order, k, rows)
    lr_mult = lr_at(k, run.K, cfg.optim)
    mom = momentum_at(k, run.K, cfg.method.ema, cfg.method.ema_schedule)
    try:
        run.step_fn(batch, k, lr_mult, mom, losses=run.pending)
    except RuntimeError:
        run.step = k + 1
        _flush(run)
        raise
    run.step = k + 1
    if run.online is not None:
        run.online.step(run.model.online.backbone, run.data.train_x, run.data.train_y,
                        run.step_fn.augment, cfg.train.batch_size)
    return lr_mult, mom


def _after_step(run: _Run, clock: Clock, bar, lr_mult: float, mom: float,
                stopping: bool) -> None:
    """The hooks due after a step: metrics line (loss, images/s), kNN monitor, spectra snapshot,
    progress bar, checkpoint."""
    cfg, step, K = run.cfg, run.step, run.K
    log_now = step % cfg.log.every == 0 or step == K
    knn_now = (cfg.eval.knn_every > 0 and step % cfg.eval.knn_every == 0 and step < K
               and run.data.labelled)
    spectra_now = (cfg.log.spectra_every > 0 and step % cfg.log.spectra_every == 0) or step == K
    keep_now = cfg.log.keep_checkpoints > 0 and step % cfg.log.keep_checkpoints == 0
    ckpt_now = (cfg.log.checkpoint_every > 0 and step % cfg.log.checkpoint_every == 0) \
        or step == K or stopping or keep_now
    line: dict[str, Any] = {}
    if log_now or knn_now or spectra_now or ckpt_now:
        _flush(run)  # every rank: the logged losses are the same all-reduced values
    if not run.main:
        return
    if log_now:
        if run.rt.device.type == "cuda":
            torch.cuda.synchronize(run.rt.device)
        dt = clock.close_window()
        line.update(loss=float(np.mean(run.window)) if run.window else float("nan"),
                    images_per_s=cfg.train.batch_size * max(len(run.window), 1) / max(dt, 1e-9))
        run.window.clear()
        if run.online is not None and (top1 := run.online.window_top1()) is not None:
            line["online_probe_top1"] = top1
    if knn_now:
        line["knn_top1"] = clock.monitored(lambda: knn_monitor(
            run.model, run.data, run.step_fn.augment, cfg, run.rt.device))
    if spectra_now:
        run.last_spectra = clock.monitored(lambda: _snapshot(run))
        for key in PROBE_METRICS:  # the probe pairs' numbers, named apart from the test set's
            line[f"probe_{key}"] = run.last_spectra[key]
    if line:
        line = {"step": step, "epoch": step / run.order.steps_per_epoch,
                "lr": lr_mult * cfg.optim.lr, "momentum": mom, **line}
        run.log_metrics(line)
        bar.set_postfix({key: (f"{v:.4g}" if isinstance(v, float) else v)
                         for key, v in line.items()
                         if key in ("loss", "knn_top1", "probe_effective_rank", "images_per_s")},
                        refresh=False)
    bar.update(1)
    if ckpt_now:
        run.train_time = clock.training_time()
        clock.monitored(lambda: _checkpoint(run, final=step == K))
        if keep_now:
            keep_checkpoint(run.out, step)


#: Snapshot numbers copied into ``metrics.jsonl`` (and the progress line, TensorBoard) with a
#: ``probe_`` prefix: they are taken on the probe's view pairs of training images, while
#: ``summary.json``'s ``effective_rank`` and ``normalised_std`` (the collapse rule) are the test set's.
PROBE_METRICS = ("effective_rank", "normalised_std", "align", "uniform")


def _loop(run: _Run, clock: Clock, bar, stop_after: int | None,
          on_step: Callable[[int], None] | None) -> bool:
    """Steps until the end (True) or until ``stop_after`` steps of this invocation (False)."""
    invocation_steps = 0
    with StopSignals(once=True) as signals:
        while run.step < run.K:
            with numerical_failure_is_divergence(run.step + 1):
                lr_mult, mom = _one_step(run)
            invocation_steps += 1
            signalled = signals.signum is not None
            if run.shard is not None:  # every rank stops after the same step
                signalled = (run.step % run.cfg.log.every == 0 or run.step == run.K) and \
                    any_rank(signalled, run.rt.device)
            stopping = (stop_after is not None and invocation_steps >= stop_after) or signalled
            with numerical_failure_is_divergence(run.step):  # snapshot eigh, kNN, checkpoint
                _after_step(run, clock, bar, lr_mult, mom, stopping)
            if on_step is not None:
                on_step(run.step)
            if signalled:
                raise Interrupted(run.step, signals.signum or signal.SIGTERM)
            if stopping and run.step < run.K:
                return False
    if run.rt.device.type == "cuda":
        torch.cuda.synchronize(run.rt.device)
    run.train_time = clock.training_time()
    return True


def _finish(run: _Run, clock: Clock) -> dict[str, Any]:
    """Final evaluation, the last metrics line and summary.json."""
    cfg, K, out = run.cfg, run.K, run.out
    summary_path = out / SUMMARY
    result = evaluate_model(run.model, run.data, run.step_fn.augment, cfg, run.rt.device,
                            backbone=run.backbone, online=run.online)
    if run.last_spectra is None:  # finished before, evaluation interrupted: reuse the last line
        path = run.spectra_log.path
        lines = path.read_text().splitlines() if path.exists() else []
        last = json.loads(lines[-1]) if lines else {}
        run.last_spectra = last if last.get("step") == K else clock.monitored(
            lambda: _snapshot(run))
    summary = {
        **result,
        "steps": K,
        "epochs": K / run.order.steps_per_epoch,
        "wall_time_s": run.elapsed(),
        "train_time_s": run.train_time,
        "images_per_s": cfg.train.batch_size * K / max(run.train_time, 1e-9),
        "spectra": run.last_spectra,
        "device": str(run.rt.device),
    }
    run.log_metrics({"step": K, "epoch": K / run.order.steps_per_epoch, "final": True,
                     **{key: summary[key] for key in ("knn_top1", "effective_rank") if key in summary}})
    if run.tb is not None:
        run.tb.summary(summary, K)
    write_json_atomic(summary_path, summary)
    return summary


def train(cfg: TrainConfig, out: str | Path, *, quiet: bool | None = None,
          stop_after: int | None = None,
          on_step: Callable[[int], None] | None = None,
          data: TorchData | None = None,
          backbone: torch.nn.Module | None = None) -> dict[str, Any] | None:
    """Run (or resume) the training described by ``cfg`` in folder ``out``.

    ``quiet``: no progress; None (default): a bar on a terminal, plain lines every 30 s when
    stderr is a file or a pipe (nohup, SLURM), nothing when the ``CI`` variable is set.
    ``stop_after``: stop after this many optimiser steps in this invocation (a checkpoint is
    written there; rerunning resumes). ``on_step(k)`` is called after step ``k`` (1-based) is
    complete and logged. Returns the summary dict, or None when stopped early. Raises
    :class:`NonFiniteError` on NaN/inf, :class:`Interrupted` after SIGINT/SIGTERM (the step under
    way is completed and checkpointed first) and :class:`analysis.runs.FolderBusyError` when
    another process writes ``out`` (one writer per run folder, :func:`analysis.runs.folder_lock`).

    Own data and trunks (the Python API): ``data`` (:class:`realnet.data.torchdata.TorchData`) replaces
    the config's dataset (``data.dataset`` becomes ``torch``), ``backbone`` (any ``nn.Module``
    mapping ``(B, C, H, W)`` images to ``(B, d)`` features, in its initial state) replaces the
    config's trunk (``model.arch`` becomes ``custom``); to resume such a run, pass them again."""
    own = OwnParts(data, backbone)
    cfg = own.mark(cfg)
    cfg.validate()
    if cfg.log.tensorboard:
        tensorboard_writer_class()  # the package is there, or a clear error before any work
    shard = shard_from_env()  # under torchrun: data-parallel (realnet.training.distributed)
    if shard is not None and cfg.train.batch_size % shard.world:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is invalid: allowed a multiple "
                         f"of the {shard.world} processes (it is the global batch)")
    out = ensure_writable(out)  # a file in the way or a read-only folder: refused before any work
    main = shard is None or shard.main
    try:
        with folder_lock(out) if main else contextlib.nullcontext():  # rank 0 writes the folder
            return _train_locked(cfg, out, progress_mode(quiet) if main else "off", stop_after,
                                 on_step, own, shard)
    finally:
        if shard is not None:  # leave the group before exiting (gloo aborts a process that does not)
            close_shard()


def _train_locked(cfg: TrainConfig, out: Path, progress: str, stop_after: int | None,
                  on_step: Callable[[int], None] | None, own: OwnParts,
                  shard: Shard | None = None) -> dict[str, Any] | None:
    run = _setup(cfg, out, own, shard, progress)
    done = _resume(run)
    if done is not None:
        return done if run.main else None
    if cfg.log.tensorboard and run.main:  # events after the checkpoint's step (all on a fresh start) are purged
        run.tb = TensorBoardLog(out, purge_step=run.step + 1 if run.step > 0 else 0)
    try:
        if run.step == 0 and cfg.log.spectra_every > 0 and run.main:
            with numerical_failure_is_divergence(0), phase("spectra snapshot at step 0", progress):
                run.last_spectra = _snapshot(run)
        bar = make_progress(run.K, run.step, progress)
        clock = Clock(run.train_time)
        try:
            if not _loop(run, clock, bar, stop_after, on_step):
                return None
        finally:
            bar.close()
        if not run.main:
            return None  # rank 0 evaluates alone
        with numerical_failure_is_divergence(run.step), phase("final evaluation", progress):
            return _finish(run, clock)
    finally:
        if run.tb is not None:
            run.tb.close()
