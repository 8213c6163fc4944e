"""The run folder: its layout, its status, its atomic writes, and reading it as plain data (the
trainer need not be alive or importable). This module is the one owner of the layout: the
trainer (``realnet``) writes through it, the sweep runner, the tables, the figures and the
comparison read through it.

Folder layout (written by the real-network trainer)::

    config.json      resolved config (nested dict; ``seed`` at top level)
    metrics.jsonl    one JSON object per logged step (``step``, ``lr``, ``loss``, the probe
                     pairs' ``probe_effective_rank`` ...; a last line with ``"final": true`` and
                     the test set's ``effective_rank``, as in ``summary.json``)
    spectra.jsonl    one summary line per spectra snapshot
    spectra/step_XXXXXXX.npz   snapshot arrays: ``F``, ``F_eigvals`` (descending), ``C_same``,
                     ``C_cross``, ``same_on_F``, ``cross_on_F``, ``effective_rank``, and with a
                     linear predictor ``Wp``, ``alignment``, ...
    summary.json     final evaluation (``linear_top1``, ``knn_top1``, ``collapsed``, ...)
    run.json         how it ran (device, numerics, threads, sizes)
    checkpoints/last.pt   the last checkpoint (atomic)
    eval.json        a later re-evaluation of the last checkpoint (``python -m realnet eval``)
    sweep_status.json     the sweep runner's record of its last attempt at this run

Status (:func:`run_status`): ``done`` (a readable ``summary.json``), ``nonfinite`` (the last
attempt stopped on NaN/inf: diverged), ``partial`` (a checkpoint to resume from), ``failed`` (the
last attempt crashed with nothing to resume) or ``missing``.

Writes: :func:`atomic_file` (a temporary file with a name unique to the process, in the same
folder, renamed over the target; removed if the write fails), :func:`write_json_atomic`, and
:class:`JsonlLog` for the append-only logs.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from .errors import ConfigError
from .runconfig import RunConfig

__all__ = ["Run", "load_run", "read_jsonl", "read_json", "read_snapshot_file", "snapshot_path",
           "COMPACT_SNAPSHOTS", "write_compact_snapshots", "read_compact_snapshots",
           "is_result_summary", "stale_temporaries", "refuse_inside_run",
           "config_without", "SNAPSHOT_RE", "CONFIG", "RUN_INFO", "METRICS", "SPECTRA_LOG",
           "SPECTRA_DIR", "SUMMARY", "EVAL", "CHECKPOINT", "SWEEP_STATUS", "STATUSES",
           "run_status", "atomic_file", "write_json_atomic", "JsonlLog", "folder_lock",
           "FolderBusyError", "LOCK", "require_finished"]

SNAPSHOT_RE = re.compile(r"^step_(\d+)\.npz$")
CONFIG, RUN_INFO, SUMMARY, EVAL = "config.json", "run.json", "summary.json", "eval.json"
METRICS, SPECTRA_LOG, SPECTRA_DIR = "metrics.jsonl", "spectra.jsonl", "spectra"
CHECKPOINT = Path("checkpoints") / "last.pt"
#: Every spectra snapshot of a finished run in one file small enough to commit (about 0.5 MB for
#: 21 snapshots of a 32-d projector): :func:`write_compact_snapshots`.
COMPACT_SNAPSHOTS = "snapshots.npz"
SWEEP_STATUS = "sweep_status.json"
STATUSES = ("done", "nonfinite", "partial", "failed", "missing")


def read_json(path: str | Path) -> Any:
    """The JSON content of ``path``, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


#: What every finished run's summary.json holds; a summary without them (``{}``, a torn or
#: hand-made file) does not make the run done.
SUMMARY_RESULT_FIELDS = ("steps",)


def is_result_summary(summary: Any) -> bool:
    """Whether ``summary`` (parsed summary.json) is a finished run's result."""
    return isinstance(summary, dict) and all(k in summary for k in SUMMARY_RESULT_FIELDS)


def stale_temporaries(folder: str | Path) -> list[Path]:
    """The temporaries (``.<name>.<random>.tmp``, :func:`atomic_file`) that a killed writer left
    in a run folder and its ``spectra/`` (remove them only when no other process writes there)."""
    folder = Path(folder)
    return sorted(p for d in (folder, folder / SPECTRA_DIR, (folder / CHECKPOINT).parent)
                  if d.is_dir() for p in d.glob(".*.tmp"))


def run_status(folder: str | Path) -> str:
    """One of :data:`STATUSES` (module docstring) for a run folder."""
    folder = Path(folder)
    if is_result_summary(read_json(folder / SUMMARY)):
        return "done"
    attempt = read_json(folder / SWEEP_STATUS) or {}
    if attempt.get("status") == "nonfinite":
        return "nonfinite"
    if (folder / CHECKPOINT).is_file():
        return "partial"
    return "failed" if attempt.get("status") == "failed" else "missing"


@contextlib.contextmanager
def atomic_file(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (``.<name>.<random>.tmp``, unique to the process);
    after the block it is renamed over ``path`` (atomic on POSIX and Windows); if the block
    raises it is removed and ``path`` is untouched (an OSError that names no file, such as a full
    disk during a write, is raised again naming ``path``). ``fsync``: flush the bytes to disk
    first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None and e.errno is not None:  # a write's ENOSPC names no file: name ours
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FolderBusyError(RuntimeError):
    """Another live process holds the folder's lock (:func:`folder_lock`)."""


LOCK = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "run folder") -> Iterator[None]:
    """Hold an exclusive OS lock on ``folder/.lock`` for the block (one writer per folder), with
    ``filelock`` (an ``flock`` on POSIX, ``msvcrt`` locking on Windows: the OS releases it when the
    process dies, so a killed writer never leaves a stale lock). A second process is refused at
    once with :class:`FolderBusyError` naming the holder's pid (written into the lock file)."""
    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    try:  # the holder's pid, read before trying (a failed attempt may truncate the file)
        holder = path.read_text(errors="replace").strip() or "?"
    except OSError:
        holder = "?"
    lock = FileLock(path, timeout=0, thread_local=False, fallback_to_soft=False,
                    preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusyError(f"{str(folder)!r}: this {what} is being written by another "
                              f"process (pid {holder}); wait for it to end or use another "
                              "folder") from None
    try:
        path.write_text(str(os.getpid()))
        yield
    finally:
        lock.release()


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON, written atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
    return Path(path)


class JsonlLog:
    """An append-only JSON-lines log of a run folder (``metrics.jsonl``, ``spectra.jsonl``);
    :meth:`truncate_after` drops what an interrupted invocation wrote after its last checkpoint."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write(self, obj: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(obj) + "\n")

    def read(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)

    def truncate_after(self, step: int) -> None:
        """Keep the lines with ``step <= step`` that are not ``final`` (a torn line is dropped)."""
        if not self.path.exists():
            return
        keep = [ln for ln in self.read() if ln.get("step", 0) <= step and not ln.get("final", False)]
        with atomic_file(self.path) as tmp:
            tmp.write_text("".join(json.dumps(ln) + "\n" for ln in keep))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; [] if absent. A torn last line (a write cut short)
    is skipped silently; an unreadable line elsewhere is skipped with a warning naming it."""
    if not path.is_file():
        return []
    out = []
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    for i, line in enumerate(lines):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            if i < len(lines) - 1:
                warnings.warn(f"{path}: line {i + 1} is not a JSON object; skipped", stacklevel=2)
            continue
        out.append(obj)
    return out


def snapshot_path(folder: str | Path, step: int) -> Path:
    """Where a run folder keeps the spectra snapshot of ``step``: ``spectra/step_0000500.npz``."""
    return Path(folder) / SPECTRA_DIR / f"step_{int(step):07d}.npz"


def read_snapshot_file(path: str | Path) -> dict[str, Any]:
    """A snapshot ``.npz`` as a dict (0-d arrays become Python scalars); a damaged file is a
    ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{str(path)!r} is not a readable spectra snapshot ({type(e).__name__}: "
                         f"{str(e)[:200]}); delete it or rerun the run") from None


def _compact_dtype(key: str, a: np.ndarray) -> np.ndarray:
    """float64 arrays as float32 (the matrices' eigenvalues keep 6-7 significant digits, far
    below the collapse tolerance 1e-3 relative), bootstrap replicates as float16 (they give a
    16-84 % band, which 3 digits resolve); everything else unchanged."""
    if a.dtype.kind != "f" or a.ndim == 0:
        return a
    return a.astype(np.float16 if key.endswith("_boot") else np.float32)


def write_compact_snapshots(folder: str | Path) -> Path:
    """Write ``folder/snapshots.npz``: every ``spectra/step_*.npz`` of the run, each array stored
    as ``s<step>.<key>`` (:func:`_compact_dtype`); atomic. Returns its path. The analysis reads it
    when ``spectra/`` is absent (a fresh clone), so every scorecard number of a committed run
    rebuilds from the clone."""
    folder = Path(folder)
    steps = sorted(int(m.group(1)) for f in (folder / SPECTRA_DIR).iterdir()
                   if (m := SNAPSHOT_RE.match(f.name))) if (folder / SPECTRA_DIR).is_dir() else []
    if not steps:
        raise ConfigError(f"{str(folder)!r}: no spectra snapshots (spectra/step_*.npz) to compact")
    arrays: dict[str, np.ndarray] = {}
    for step in steps:
        for key, value in read_snapshot_file(snapshot_path(folder, step)).items():
            arrays[f"s{step:07d}.{key}"] = _compact_dtype(key, np.asarray(value))
    out = folder / COMPACT_SNAPSHOTS
    with atomic_file(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return out


def read_compact_snapshots(path: str | Path) -> dict[int, dict[str, Any]]:
    """``{step: snapshot}`` of a :func:`write_compact_snapshots` file (values as float64 where
    they were float, 0-d arrays as Python scalars, as :func:`read_snapshot_file` gives them)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out: dict[int, dict[str, Any]] = {}
            for name in z.files:
                step, key = name[1:].split(".", 1)
                a = z[name]
                a = a.astype(np.float64) if a.dtype.kind == "f" else a
                out.setdefault(int(step), {})[key] = a.item() if a.ndim == 0 else a
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{str(path)!r} is not a readable snapshots file ({type(e).__name__}: "
                          f"{str(e)[:200]})") from None
    return out


@dataclass
class Run:
    """A run folder loaded as data (snapshots are read on demand: from the run's
    :data:`COMPACT_SNAPSHOTS` when it has one, the form that is committed, so that a working copy
    and a fresh clone compute the same numbers; else from ``spectra/``)."""

    path: Path
    config: dict[str, Any]  # config.json as written; read settings through ``cfg``
    cfg: RunConfig  # the run's settings, typed, with the defaults of analysis.runconfig
    metrics: list[dict[str, Any]]
    spectra_lines: list[dict[str, Any]]
    summary: dict[str, Any] | None
    snapshot_steps: list[int] = field(default_factory=list)
    compact: dict[int, dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def snapshot(self, step: int) -> dict[str, Any]:
        if step not in self.snapshot_steps:
            raise ConfigError(f"step: no snapshot at step {step} in {self.path} (have "
                             f"{self.snapshot_steps[:5]}{'...' if len(self.snapshot_steps) > 5 else ''})")
        if self.compact is not None:
            return dict(self.compact[step])
        return read_snapshot_file(snapshot_path(self.path, step))

    def snapshots(self) -> list[dict[str, Any]]:
        return [self.snapshot(s) for s in self.snapshot_steps]

    def final_snapshot(self) -> dict[str, Any]:
        if not self.snapshot_steps:
            raise ConfigError(f"{self.path}: no spectra snapshots (spectra/step_*.npz)")
        return self.snapshot(self.snapshot_steps[-1])

    def lr_log(self) -> tuple[list[int], list[float]] | None:
        """``(steps, lr)`` of the metrics lines that carry an ``lr``, or None."""
        pts = [(int(m["step"]), float(m["lr"])) for m in self.metrics
               if "lr" in m and "step" in m and not m.get("final", False)]
        if not pts:
            return None
        steps, lrs = zip(*sorted(set(pts)))
        return list(steps), list(lrs)


def refuse_inside_run(path: str | Path, allowed: Sequence[str] = ()) -> None:
    """ConfigError when ``path`` lies inside a run folder (a folder above it holds config.json)
    and is not one of that folder's ``allowed`` outputs (names relative to the run folder): no
    command but the run's own writer replaces a run's files."""
    target = Path(path).resolve()
    for folder in target.parents:
        if (folder / CONFIG).is_file():
            rel = target.relative_to(folder).as_posix()
            if rel not in allowed:
                raise ConfigError(f"--out {str(path)!r} lies inside the run folder {str(folder)!r}; "
                                  f"allowed there: {', '.join(allowed) or 'nothing'} (or write "
                                  "outside the run folder)")
            return


def require_finished(path: str | Path) -> None:
    """ValueError unless :func:`run_status` of the folder is ``done`` (analysis of a diverged,
    partial or unfinished run would score the theory against a network that never finished)."""
    if not (Path(path) / CONFIG).is_file():
        raise ConfigError(f"run_dir: {str(path)!r} has no config.json; not a run folder")
    status = run_status(path)
    if status != "done":
        why = {"nonfinite": "it diverged (NaN/inf)", "partial": "it has not finished (resume it)",
               "failed": "its last attempt failed", "missing": "it has no finished training"}[status]
        raise ConfigError(f"{str(path)!r}: {why}; analysis needs a finished run (status {status!r})")


def load_run(path: str | Path) -> Run:
    """Load a run folder; ValueError naming the folder when it has no ``config.json``."""
    path = Path(path)
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise ConfigError(f"run_dir: {str(path)!r} has no config.json; not a run folder")
    try:
        config = json.loads(cfg_path.read_text())
        cfg = RunConfig.from_dict(config)  # a config of another shape is named here, once
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{str(cfg_path)!r} is not a valid run config ({e})") from None
    summary_path = path / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    steps = []
    compact = None
    spec_dir = path / SPECTRA_DIR
    if (path / COMPACT_SNAPSHOTS).is_file():  # the committed form wins: a clone reads the same
        compact = read_compact_snapshots(path / COMPACT_SNAPSHOTS)
        steps = list(compact)
    elif spec_dir.is_dir():
        for f in spec_dir.iterdir():
            m = SNAPSHOT_RE.match(f.name)
            if m:
                steps.append(int(m.group(1)))
    return Run(path, config, cfg, read_jsonl(path / METRICS), read_jsonl(path / SPECTRA_LOG), summary,
               sorted(steps), compact)


def config_without(config: dict[str, Any], drop: tuple[str, ...] = ("seed",)) -> dict[str, Any]:
    """A copy of a nested config without the dotted keys in ``drop`` (for grouping runs that
    differ only by seed)."""
    out = json.loads(json.dumps(config))
    for key in drop:
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return out
