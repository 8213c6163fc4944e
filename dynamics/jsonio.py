"""Plain-JSON conversion shared by every writer of results (theory trajectories, real-run
reports, figures, benchmarks); :mod:`analysis.jsonio` re-exports it."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["json_ready"]


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
