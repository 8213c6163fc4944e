"""Atomic checkpoints and the random-number state a bit-exact resume needs.

:func:`save_checkpoint` writes to a temporary file in the same folder, flushes it to disk and
moves it over the old file with :func:`os.replace` (atomic on POSIX and Windows), so a crash at any
point leaves either the old checkpoint or the new one, never a torn file.

:func:`capture_rng_state` / :func:`restore_rng_state` cover every generator a run draws from: the
torch CPU default generator, the CUDA default generators (where CUDA is initialised), numpy's and
Python's global generators and any explicit :class:`torch.Generator` the loop holds (augmentation
on the device, data order), by name.
"""
from __future__ import annotations

import io
import os
import pickle
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from analysis.errors import ConfigError
from analysis.runs import CHECKPOINT, atomic_file

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "all_finite",
    "CorruptCheckpointError",
    "remove_stale_temporaries",
    "load_model_state",
    "model_weights",
    "keep_checkpoint",
    "kept_steps",
    "load_checkpoint_at",
    "CHECKPOINT",
]



def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Atomically write ``state`` (anything :func:`torch.save` takes) to ``path``.

    The bytes go to a temporary file next to ``path``, are flushed and fsync'ed, and the file is
    renamed over ``path``; the folder is created if needed. Returns ``path``."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    with atomic_file(path, fsync=True) as tmp:
        tmp.write_bytes(buf.getbuffer())
    _fsync_dir(path.parent)
    return path


def _kept_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT.parent / f"step_{step:07d}.pt"


def keep_checkpoint(run_dir: str | Path, step: int) -> Path:
    """Keep the run's current ``last.pt`` (of ``step``) as ``checkpoints/step_XXXXXXX.pt``
    (``log.keep_checkpoints``): a hard link where the file system allows (no copy; a later
    ``last.pt`` replaces its own name only), else a copy; atomic either way."""
    run_dir = Path(run_dir)
    last, kept = run_dir / CHECKPOINT, _kept_path(run_dir, step)
    with atomic_file(kept) as tmp:
        tmp.unlink()
        try:
            os.link(last, tmp)
        except OSError:
            tmp.write_bytes(last.read_bytes())
    return kept


def kept_steps(run_dir: str | Path) -> list[int]:
    """The steps whose checkpoints a run kept (:func:`keep_checkpoint`), ascending."""
    folder = Path(run_dir) / CHECKPOINT.parent
    return sorted(int(p.stem[5:]) for p in folder.glob("step_*.pt") if p.stem[5:].isdigit())


def load_checkpoint_at(run_dir: str | Path, step: int | None = None) -> tuple[Path, dict[str, Any]]:
    """``(file, state)`` of the checkpoint of ``step`` (None: the last one): a kept checkpoint,
    or ``last.pt`` when it is of that step (loaded once). ConfigError listing the steps there are
    when there is none."""
    run_dir = Path(run_dir)
    last = run_dir / CHECKPOINT
    if step is None:
        if not last.is_file():
            raise ConfigError(f"{str(run_dir)!r}: no checkpoint ({CHECKPOINT}); nothing to use yet")
        return last, load_checkpoint(last)
    if _kept_path(run_dir, step).is_file():
        return _kept_path(run_dir, step), load_checkpoint(_kept_path(run_dir, step))
    if last.is_file():
        state = load_checkpoint(last)
        if state.get("step") == step:
            return last, state
    there = kept_steps(run_dir)
    raise ConfigError(f"--step {step}: {str(run_dir)!r} has no checkpoint of that step (kept: "
                      f"{', '.join(map(str, there)) or 'none'}, and the last one; train with "
                      "log.keep_checkpoints=N to keep every N-th)")


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete temporary files that a killed :func:`save_checkpoint` left next to ``path``
    (call it only when no other process writes that checkpoint). Returns what was removed."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the OS allows opening a folder (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(...,
    weights_only=True)`` (tensors and plain Python values only; the RNG states are stored as
    such). Checkpoints of earlier versions, which pickled numpy's state, are read with
    ``weights_only=False`` after the safe load refuses them: load only checkpoints you wrote."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            if "Weights only load failed" not in str(e):
                raise
            state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds on a damaged file
        raise CorruptCheckpointError(path, f"{type(e).__name__}: {e}") from None
    if not isinstance(state, dict):
        raise CorruptCheckpointError(path, "not a checkpoint of this project")
    return state


class CorruptCheckpointError(ConfigError):
    """A checkpoint file that cannot be read (truncated, empty, garbage)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"checkpoint {str(path)!r} is truncated or corrupt ({why.splitlines()[0][:200]}); "
                         "delete it to restart the run from step 0")


def _numpy_state_plain(st: tuple) -> tuple:
    """numpy's legacy state ``(name, uint32 keys, pos, has_gauss, cached)`` with the keys as an
    int64 tensor, so that ``torch.load(weights_only=True)`` reads it."""
    name, keys, pos, has_gauss, cached = st
    return (str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
            float(cached))


def _numpy_state_native(st: Any) -> tuple:
    name, keys, pos, has_gauss, cached = st
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    return (name, keys.astype(np.uint32), pos, has_gauss, cached)


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot of every random generator the run uses (see module docstring)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_plain(np.random.get_state()),
        "python": random.getstate(),
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any],
                      generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore a :func:`capture_rng_state` snapshot. Every named generator in ``generators`` must
    be present in the snapshot (a ValueError names the missing one)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state_native(state["numpy"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", {})
    for name, g in (generators or {}).items():
        if name not in saved:
            raise ValueError(f"generators: the checkpoint has no state for {name!r} "
                             f"(it has {sorted(saved)})")
        g.set_state(saved[name])


def all_finite(tensors: Mapping[str, torch.Tensor] | Any) -> str | None:
    """``None`` when every floating tensor of a state dict (or module) is finite, else the name
    of the first one that holds a NaN or an infinity. One host synchronisation in all."""
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    items = [(k, v) for k, v in tensors.items()
             if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not items:
        return None
    flags = torch.stack([torch.isfinite(v).all().to("cpu", non_blocking=False) for _, v in items])
    if bool(flags.all()):
        return None
    return items[int((~flags).nonzero()[0])][0]


def model_weights(state: Mapping[str, Any], path: str | Path) -> Mapping[str, Any]:
    """A checkpoint's ``model`` state dict; one without it is not a checkpoint of this project."""
    weights = state.get("model")
    if not isinstance(weights, Mapping):
        raise CorruptCheckpointError(Path(path), "it holds no model weights: not a checkpoint of this "
                                     "project")
    return weights


def load_model_state(model: torch.nn.Module, state: Mapping[str, Any], path: str | Path) -> None:
    """Load a checkpoint's ``model`` weights into ``model``; a checkpoint without them, or one
    written for another model (another width, predictor or method), is a ConfigError naming the
    file, not a traceback."""
    weights = model_weights(state, path)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).splitlines()
        detail = next((ln.strip() for ln in first[1:] if ln.strip()), first[0] if first else "")
        raise ConfigError(f"checkpoint {str(path)!r} was written for another model than this "
                          f"run's config ({detail[:200]}); the folder holds another run's "
                          "checkpoint") from None

