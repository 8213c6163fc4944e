"""The training loop of a real BYOL / SimSiam run (THEORY.md section 4), top to bottom.

One step (optimiser step ``k``, counted from 0):

1. batch indices from the epoch's permutation (a generator seeded by ``(seed, epoch)``; the
   dataset stays on the device as uint8);
2. two views by :class:`realnet.augment.GPUAugment` from a generator on the device;
3. forward both views, loss (:func:`realnet.model.ssl_loss`), backward;
4. ``predictor.observe`` with the detached projector outputs (before the optimiser step);
5. lr from the schedule, optimiser step, ``predictor.after_optimizer_step(k + 1)`` (DirectPred
   sets ``Wp`` here, section 3);
6. EMA update of the target with the momentum of the schedule.

Around it: the kNN monitor every ``eval.knn_every`` steps, spectra snapshots
(:mod:`realnet.spectra`) every ``log.spectra_every`` steps and at steps 0 and the last, a
``metrics.jsonl`` line every ``log.every`` steps, atomic checkpoints every ``log.checkpoint_every``
steps and at the end. A run restarted with the same command resumes from its last checkpoint; on
CPU it ends with exactly the numbers of an uninterrupted run (every generator state, the step
counter and the loss window are in the checkpoint; the data order is a function of the step).

A NaN/inf loss or weight stops the run with :class:`NonFiniteError` naming the step; no
checkpoint is ever written from a non-finite state, so the last good one is kept.

End of run: kNN and linear probe on frozen trunk features (labelled train -> test, final-epoch
accuracy), the same probe on a randomly initialised trunk of the same seed, the collapse rule of
:class:`realnet.config.EvalConfig`, and ``summary.json``.

Run folder::

    config.json  run.json  metrics.jsonl  spectra.jsonl  spectra/step_*.npz
    checkpoints/last.pt  summary.json  (eval.json from ``python -m realnet eval``)
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from analysis import metrics

from . import spectra
from .augment import GPUAugment
from .checkpoint import (all_finite, capture_rng_state, load_checkpoint, remove_stale_temporaries,
                         restore_rng_state, save_checkpoint)
from .config import TrainConfig, config_diff, config_from_dict, config_to_dict
from .data import DatasetSpec, dataset_spec, load_images
from .evaluate import extract_features, knn_top1, linear_probe
from .losses import LOSSES
from .model import SSLModel, build_ssl_model, ssl_loss
from .momentum import momentum_at
from .optim import build_optimizer, lr_at
from .predictors import predictor_param_groups

__all__ = [
    "NonFiniteError",
    "Runtime",
    "RunData",
    "BatchOrder",
    "resolve_runtime",
    "load_run_data",
    "param_groups",
    "train",
    "evaluate_model",
    "evaluate_run",
    "CHECKPOINT",
]

#: Checkpoint file inside a run folder.
CHECKPOINT = Path("checkpoints") / "last.pt"
#: Offsets of the seeds of the loop's own generators (kept apart from the model seed).
_AUG_SEED, _PROBE_SEED, _PROBE_PICK_SEED = 1, 2, 3


class NonFiniteError(FloatingPointError):
    """The loss or the weights became NaN/inf at ``step`` (1-based optimiser step)."""

    def __init__(self, step: int, what: str) -> None:
        self.step, self.what = step, what
        super().__init__(f"non-finite {what} at step {step}; the run stopped and its last good "
                         f"checkpoint (if any) is kept. Lower optim.lr or check the data.")


# ---------------------------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Runtime:
    """Resolved numerics: ``device`` and the auto flags (on for CUDA, off on CPU); ``compile``
    only on CUDA."""

    device: torch.device
    bf16: bool
    channels_last: bool
    compile: bool


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    """Resolve ``device="auto"`` and the tri-state numerics flags. A CUDA device that is not
    there is refused (ValueError naming ``device``)."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={cfg.device!r}: CUDA is not available here; use device=cpu")
    device = torch.device(name)
    cuda = device.type == "cuda"
    pick = lambda v: cuda if v is None else bool(v)  # noqa: E731
    return Runtime(device, pick(cfg.train.bf16), pick(cfg.train.channels_last),
                   cuda and cfg.train.compile)


@dataclass
class RunData:
    """The images a run needs, uint8 on the device; labels int64 on the device."""

    spec: DatasetSpec
    ssl: torch.Tensor
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_run_data(cfg: TrainConfig, device: torch.device) -> RunData:
    """Load the SSL pool and the labelled train/test splits (first ``data.*_limit`` images)."""
    d = cfg.data

    def get(split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = load_images(d.dataset, d.root, split, download=d.download)
        if limit is not None:
            x, y = x[:limit], y[:limit]
        return x.to(device), y.to(device)

    ssl, _ = get("ssl", d.ssl_limit)
    if len(ssl) < cfg.train.batch_size:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is larger than the SSL pool "
                         f"({len(ssl)} images); allowed at most {len(ssl)}")
    train_x, train_y = get("train", d.train_limit)
    test_x, test_y = get("test", d.test_limit)
    return RunData(dataset_spec(d.dataset), ssl, train_x, train_y, test_x, test_y)


class BatchOrder:
    """Epoch permutations of ``n`` images, ``n // batch_size`` full batches per epoch (the last
    partial batch is dropped). The permutation of epoch ``e`` comes from a generator seeded by
    ``(seed, e)``, so the batch of any step is a pure function of the step (exact resume)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps_per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            s = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(s))
            self._epoch = epoch
        return self._perm

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, batch index within the epoch)`` of optimiser step ``step`` (0-based)."""
        return divmod(step, self.steps_per_epoch)

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = self.position(step)
        return self.permutation(epoch)[i * self.batch_size:(i + 1) * self.batch_size]


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """``train.steps``, or ``ceil(train.epochs * steps_per_epoch)``."""
    if cfg.train.steps is not None:
        return cfg.train.steps
    return max(1, math.ceil(cfg.train.epochs * steps_per_epoch - 1e-9))


def param_groups(model: SSLModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Online encoder at ``optim.lr``; the predictor's trainable parameters at
    ``predictor.lr_ratio * optim.lr`` (alpha_p) with ``predictor.weight_decay`` when set
    (:func:`realnet.predictors.predictor_param_groups`). Each group carries ``base_lr``, which the
    lr schedule multiplies at every step."""
    groups = [{"params": list(model.online.parameters()), "lr": cfg.optim.lr, "name": "online"}]
    groups += predictor_param_groups(model.predictor, cfg.predictor, cfg.optim.lr,
                                     cfg.optim.weight_decay)
    for g in groups:
        g["base_lr"] = g["lr"]
    return groups


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
def _features(module: torch.nn.Module, x: torch.Tensor, augment: GPUAugment, cfg: TrainConfig,
              device: torch.device) -> torch.Tensor:
    was = module.training
    try:
        return extract_features(module, x, augment, batch_size=cfg.eval.batch_size, device=device)
    finally:
        module.train(was)


def knn_monitor(model: SSLModel, data: RunData, augment: GPUAugment, cfg: TrainConfig,
                device: torch.device) -> float:
    """Cosine-weighted kNN top-1 (percent) on trunk features: labelled train bank, test queries."""
    bank = _features(model.online.backbone, data.train_x, augment, cfg, device)
    query = _features(model.online.backbone, data.test_x, augment, cfg, device)
    return float(knn_top1(bank, data.train_y, query, data.test_y, k=cfg.eval.knn_k,
                          temperature=cfg.eval.knn_temperature, num_classes=data.spec.num_classes))


def _probe(train_f: torch.Tensor, test_f: torch.Tensor, data: RunData, cfg: TrainConfig,
           device: torch.device) -> dict[str, Any]:
    e = cfg.eval
    kw: dict[str, Any] = {"epochs": e.probe_epochs, "batch_size": e.probe_batch_size,
                          "seed": cfg.seed, "device": device}
    if e.probe_lr is not None:
        kw["lr"] = e.probe_lr
    if e.probe_weight_decay is not None:
        kw["weight_decay"] = e.probe_weight_decay
    return linear_probe(train_f, data.train_y, test_f, data.test_y,
                        num_classes=data.spec.num_classes, **kw)


def collapse_verdict(Z: np.ndarray, cfg: TrainConfig) -> dict[str, Any]:
    """The collapse rule of :class:`realnet.config.EvalConfig` on embeddings ``Z`` (n, d):
    collapsed when RankMe ``< eval.collapse_rank`` or the normalised-embedding std
    ``< eval.collapse_std_fraction / sqrt(d)``."""
    rank = metrics.effective_rank(Z)
    std = metrics.normalised_embedding_std(Z)
    std_floor = cfg.eval.collapse_std_fraction / math.sqrt(Z.shape[1])
    return {"effective_rank": rank, "normalised_std": std, "normalised_std_floor": std_floor,
            "collapsed": bool(rank < cfg.eval.collapse_rank or std < std_floor)}


def evaluate_model(model: SSLModel, data: RunData, augment: GPUAugment, cfg: TrainConfig,
                   device: torch.device) -> dict[str, Any]:
    """Final evaluation: kNN, linear probe (final epoch) on frozen trunk features, the same probe
    on the randomly initialised trunk of the same seed, and the collapse verdict on the test-set
    projector outputs."""
    out: dict[str, Any] = {}
    tr = _features(model.online.backbone, data.train_x, augment, cfg, device)
    te = _features(model.online.backbone, data.test_x, augment, cfg, device)
    out["knn_top1"] = float(knn_top1(tr, data.train_y, te, data.test_y, k=cfg.eval.knn_k,
                                     temperature=cfg.eval.knn_temperature,
                                     num_classes=data.spec.num_classes))
    z_test = _features(model.online, data.test_x, augment, cfg, device).double().cpu().numpy()
    out.update(collapse_verdict(z_test, cfg))
    out["effective_rank_trunk"] = metrics.effective_rank(te.double().cpu().numpy())
    if cfg.eval.linear_probe:
        res = _probe(tr, te, data, cfg, device)
        out["linear_top1"] = float(res["top1"])
        out["linear_train_top1"] = float(res.get("train_top1", float("nan")))
        if cfg.eval.random_init_baseline:
            with torch.random.fork_rng(devices=[]):
                rand = build_ssl_model(cfg, data.spec).online.backbone.to(device)
            r = _probe(_features(rand, data.train_x, augment, cfg, device),
                       _features(rand, data.test_x, augment, cfg, device), data, cfg, device)
            out["linear_top1_random_init"] = float(r["top1"])
    return out


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
class _Jsonl:
    """Append-only JSON-lines file; :meth:`truncate_after` drops lines written after a
    checkpoint by an interrupted invocation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = []
        for ln in self.path.read_text().splitlines():
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError:  # a line torn by a kill
                continue
            if obj.get("step", 0) <= step and not obj.get("final", False):
                keep.append(ln)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        tmp.replace(self.path)

    def write(self, obj: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(obj) + "\n")


def _quiet_default() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or not sys.stderr.isatty()


def _prepare_folder(cfg: TrainConfig, out: Path) -> None:
    """Write config.json, or check that the one there is this config (a resume)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    if path.exists():
        old = config_from_dict(json.loads(path.read_text()))
        diff = config_diff(old, cfg)
        if diff:
            raise ValueError(f"--out {str(out)!r} holds a run with a different config (keys: "
                             f"{', '.join(diff)}); use a new --out folder, or the same config to "
                             "resume it")
    else:
        tmp = path.with_name("config.json.tmp")
        tmp.write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
        tmp.replace(path)


def train(cfg: TrainConfig, out: str | Path, *, quiet: bool | None = None,
          stop_after: int | None = None,
          on_step: Callable[[int], None] | None = None) -> dict[str, Any] | None:
    """Run (or resume) the training described by ``cfg`` in folder ``out``.

    ``stop_after``: stop after this many optimiser steps in this invocation (a checkpoint is
    written there; rerunning resumes). ``on_step(k)`` is called after step ``k`` (1-based) is
    complete and logged. Returns the summary dict, or None when stopped early. Raises
    :class:`NonFiniteError` on NaN/inf."""
    cfg.validate()
    out = Path(out)
    quiet = _quiet_default() if quiet is None else quiet
    rt = resolve_runtime(cfg)
    t_start = time.perf_counter()
    _prepare_folder(cfg, out)
    data = load_run_data(cfg, rt.device)
    aug_cfg = cfg.augment_config()
    augment = GPUAugment(aug_cfg, data.spec, out_size=cfg.data.image_size)
    order = BatchOrder(len(data.ssl), cfg.train.batch_size, cfg.seed)
    K = total_steps(cfg, order.steps_per_epoch)
    if cfg.optim.warmup_steps >= K:
        raise ValueError(f"optim.warmup_steps={cfg.optim.warmup_steps} is invalid: allowed "
                         f"[0, {K}) (the run has {K} steps)")

    model = build_ssl_model(cfg, data.spec).to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(param_groups(model, cfg), cfg.optim)
    loss_fn = LOSSES[cfg.method.loss]
    aug_gen = torch.Generator(device=rt.device)
    aug_gen.manual_seed(cfg.seed * 1000 + _AUG_SEED)
    generators = {"augment": aug_gen}
    pick = torch.randperm(len(data.ssl), generator=torch.Generator().manual_seed(
        cfg.seed * 1000 + _PROBE_PICK_SEED))[:cfg.log.probe_size]
    probe_images = data.ssl[pick.to(rt.device)]

    metrics_log = _Jsonl(out / "metrics.jsonl")
    spectra_log = _Jsonl(out / "spectra.jsonl")
    step, window, elapsed_before, train_time = 0, [], 0.0, 0.0
    ckpt_path = out / CHECKPOINT
    remove_stale_temporaries(ckpt_path)
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)  # CPU: RNG states must stay CPU tensors
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"], generators)
        step, window = state["step"], list(state["loss_window"])
        elapsed_before, train_time = state["elapsed_s"], state["train_time_s"]
        if state["data_position"] != list(order.position(step)):
            raise RuntimeError(f"{ckpt_path}: data position {state['data_position']} does not "
                               f"match step {step}; the SSL pool changed since it was written")
        if state["complete"] and (out / "summary.json").is_file():
            return json.loads((out / "summary.json").read_text())
    # Drop what an interrupted invocation logged after its last checkpoint (all of it when
    # there is none), so a resumed run's logs equal an uninterrupted run's.
    metrics_log.truncate_after(step if ckpt_path.exists() else -1)
    spectra_log.truncate_after(step if ckpt_path.exists() else -1)
    _write_run_info(out, cfg, rt, data, order, K, aug_cfg)
    if rt.compile:
        model.compile_encoders()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    def checkpoint(final: bool = False) -> None:
        bad = all_finite(model)
        if bad is not None:
            raise NonFiniteError(step, f"weight {bad!r}")
        save_checkpoint(ckpt_path, {
            "step": step, "total_steps": K, "complete": final,
            "data_position": list(order.position(step)),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": capture_rng_state(generators), "loss_window": list(window),
            "elapsed_s": elapsed(), "train_time_s": train_time,
        })

    def snapshot() -> dict[str, Any]:
        views = spectra.probe_views(model.online.backbone, model.online.projector, probe_images,
                                    augment, seed=cfg.seed * 1000 + _PROBE_SEED,
                                    batch_size=cfg.eval.batch_size)
        F = model.predictor.correlation()
        Wp = model.predictor.weight_matrix()
        snap = spectra.snapshot(step, views,
                                F=None if F is None else F.detach().double().cpu().numpy(),
                                Wp=None if Wp is None else Wp.detach().double().cpu().numpy(),
                                save_matrices=cfg.log.save_matrices)
        return spectra.write_snapshot(out, snap)

    last_spectra: dict[str, Any] | None = None
    if step == 0 and cfg.log.spectra_every > 0:
        last_spectra = snapshot()
    pending: list[torch.Tensor] = []  # losses not yet read back to the host

    def flush() -> None:
        """Read pending losses back; raise NonFiniteError at the first non-finite one."""
        if not pending:
            return
        vals = torch.stack(pending).float().cpu().tolist()
        first = step - len(pending) + 1
        pending.clear()
        for i, v in enumerate(vals):
            if not math.isfinite(v):
                raise NonFiniteError(first + i, f"loss ({v})")
        window.extend(vals)

    bar = _progress(K, step, quiet)
    invocation_steps = 0
    monitor_time = 0.0  # time in kNN / spectra / checkpoints, not counted as training time
    t_loop = t_window = time.perf_counter()
    window_monitor = 0.0
    train_time_before = train_time

    def training_time() -> float:
        return train_time_before + (time.perf_counter() - t_loop) - monitor_time

    def monitored(fn: Callable[[], Any]) -> Any:
        nonlocal monitor_time, window_monitor
        t = time.perf_counter()
        try:
            return fn()
        finally:
            monitor_time += time.perf_counter() - t
            window_monitor += time.perf_counter() - t

    try:
        while step < K:
            k = step  # 0-based index of this step
            batch = data.ssl[order.indices(k).to(rt.device, non_blocking=True)]
            lr_mult = lr_at(k, K, cfg.optim)
            mom = momentum_at(k, K, cfg.method.ema, cfg.method.ema_schedule)
            try:
                _train_step(model, optimizer, batch, augment, aug_gen, loss_fn, cfg, rt, k,
                            lr_mult, mom, pending)
            except RuntimeError:  # e.g. an eigh failing on a NaN correlation: name the step
                step = k + 1
                flush()
                raise
            step = k + 1
            invocation_steps += 1
            stopping = stop_after is not None and invocation_steps >= stop_after
            log_now = step % cfg.log.every == 0 or step == K
            knn_now = cfg.eval.knn_every > 0 and step % cfg.eval.knn_every == 0 and step < K
            spectra_now = (cfg.log.spectra_every > 0 and step % cfg.log.spectra_every == 0) \
                or step == K
            ckpt_now = (cfg.log.checkpoint_every > 0 and step % cfg.log.checkpoint_every == 0) \
                or step == K or stopping
            line: dict[str, Any] = {}
            if log_now or knn_now or spectra_now or ckpt_now:
                flush()
            if log_now:
                if rt.device.type == "cuda":
                    torch.cuda.synchronize(rt.device)
                dt = time.perf_counter() - t_window - window_monitor
                line.update(loss=float(np.mean(window)) if window else float("nan"),
                            images_per_s=cfg.train.batch_size * max(len(window), 1) / max(dt, 1e-9))
                window.clear()
                t_window, window_monitor = time.perf_counter(), 0.0
            if knn_now:
                line["knn_top1"] = monitored(lambda: knn_monitor(model, data, augment, cfg,
                                                                 rt.device))
            if spectra_now:
                last_spectra = monitored(snapshot)
                line["effective_rank"] = last_spectra["effective_rank"]
                line["normalised_std"] = last_spectra["normalised_std"]
            if line:
                line = {"step": step, "epoch": step / order.steps_per_epoch,
                        "lr": lr_mult * cfg.optim.lr, "momentum": mom, **line}
                metrics_log.write(line)
                bar.set_postfix({key: (f"{v:.4g}" if isinstance(v, float) else v)
                                 for key, v in line.items()
                                 if key in ("loss", "knn_top1", "effective_rank", "images_per_s")},
                                refresh=False)
            bar.update(1)
            if ckpt_now:
                train_time = training_time()
                monitored(lambda: checkpoint(final=step == K))
            if on_step is not None:
                on_step(step)
            if stopping and step < K:
                return None
        if rt.device.type == "cuda":
            torch.cuda.synchronize(rt.device)
        train_time = training_time()
    finally:
        bar.close()

    summary_path = out / "summary.json"
    result = evaluate_model(model, data, augment, cfg, rt.device)
    if last_spectra is None:  # finished before, evaluation interrupted: reuse the last line
        lines = spectra_log.path.read_text().splitlines() if spectra_log.path.exists() else []
        last = json.loads(lines[-1]) if lines else {}
        last_spectra = last if last.get("step") == K else monitored(snapshot)
    summary = {
        **result,
        "steps": K,
        "epochs": K / order.steps_per_epoch,
        "wall_time_s": elapsed(),
        "train_time_s": train_time,
        "images_per_s": cfg.train.batch_size * K / max(train_time, 1e-9),
        "spectra": last_spectra,
        "device": str(rt.device),
    }
    metrics_log.write({"step": K, "epoch": K / order.steps_per_epoch, "final": True,
                       **{key: summary[key] for key in ("knn_top1", "effective_rank")}})
    tmp = summary_path.with_name("summary.json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(summary_path)
    return summary


def _train_step(model: SSLModel, optimizer: torch.optim.Optimizer, batch: torch.Tensor,
                augment: GPUAugment, gen: torch.Generator, loss_fn, cfg: TrainConfig,
                rt: Runtime, k: int, lr_mult: float, momentum: float,
                pending: list[torch.Tensor]) -> None:
    """One optimiser step ``k`` (0-based); appends the detached loss to ``pending``."""
    x1, x2 = augment(batch, gen), augment(batch, gen)
    if rt.channels_last:
        x1 = x1.contiguous(memory_format=torch.channels_last)
        x2 = x2.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=rt.device.type, dtype=torch.bfloat16, enabled=rt.bf16):
        out = ssl_loss(model, x1, x2, loss_fn, stop_grad=cfg.method.stop_grad,
                       symmetric=cfg.method.symmetric)
    pending.append(out.loss.detach())
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    model.predictor.observe(out.z_online, out.z_target)
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * lr_mult
    optimizer.step()
    model.predictor.after_optimizer_step(k + 1, optimizer)
    model.update_target(momentum)


def _progress(total: int, initial: int, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=quiet, unit="step", dynamic_ncols=True,
                desc="train")


def _write_run_info(out: Path, cfg: TrainConfig, rt: Runtime, data: RunData, order: BatchOrder,
                    K: int, aug_cfg: Any) -> None:
    import dataclasses

    info = {
        "device": str(rt.device),
        "device_name": (torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda"
                        else "cpu"),
        "bf16": rt.bf16, "channels_last": rt.channels_last, "compile": rt.compile,
        "torch": torch.__version__,
        "total_steps": K, "steps_per_epoch": order.steps_per_epoch,
        "n_ssl": len(data.ssl), "n_train": len(data.train_x), "n_test": len(data.test_x),
        "augment": json.loads(json.dumps(dataclasses.asdict(aug_cfg))),
    }
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# re-evaluation of a finished (or interrupted) run
# ---------------------------------------------------------------------------------------------
def evaluate_run(folder: str | Path, *, device: str | None = None) -> dict[str, Any]:
    """Re-probe the last checkpoint of a run folder (``python -m realnet eval``); writes and
    returns ``eval.json``."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json; not a run folder")
    cfg = config_from_dict(json.loads(cfg_path.read_text()))
    if device is not None:
        cfg.device = device
    cfg.validate()
    rt = resolve_runtime(cfg)
    data = load_run_data(cfg, rt.device)
    augment = GPUAugment(cfg.augment_config(), data.spec, out_size=cfg.data.image_size)
    state = load_checkpoint(folder / CHECKPOINT)
    model = build_ssl_model(cfg, data.spec).to(rt.device)
    model.load_state_dict(state["model"])
    res = evaluate_model(model, data, augment, cfg, rt.device)
    res.update(step=state["step"], total_steps=state["total_steps"], complete=state["complete"])
    (folder / "eval.json").write_text(json.dumps(res, indent=2) + "\n")
    return res
