"""Plain-JSON conversion shared by every writer of results (theory trajectories, real-run
reports, figures, benchmarks), and the up-front check that an output folder can be written;
:mod:`analysis.jsonio` re-exports them."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["json_ready", "ensure_writable"]


def ensure_writable(folder: str | Path, what: str = "--out") -> Path:
    """Create ``folder`` if needed and check, by writing and removing a small file, that results
    can be written there; a ValueError names the folder and the reason (read-only, no space, a
    file in the way), so that no command computes for minutes before it finds out."""
    folder = Path(folder).expanduser()
    try:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{what} {str(folder)!r} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        try:
            os.write(fd, b"x" * 4096)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as e:
        raise ConfigError(f"{what} {str(folder)!r} cannot be written: {e.strerror or e}") from None
    return folder


def json_ready(v: Any) -> Any:
    """A copy of ``v`` that :func:`json.dumps` accepts: arrays to (nested) lists, numpy scalars to
    Python scalars, NaN/inf to ``None`` (a missing value), dict keys to ``str``; objects with no
    JSON form (paths, devices, ...) to ``str``."""
    if isinstance(v, np.ndarray):
        return [json_ready(x) for x in v.tolist()] if v.ndim else json_ready(v.item())
    if isinstance(v, dict):
        return {str(k): json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_ready(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or isinstance(v, str):
        return v
    return str(v)
