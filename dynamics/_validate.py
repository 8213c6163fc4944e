"""Argument checks shared by the integrators. Every failure is a ``ValueError`` whose message
starts with the argument's name, so users see which input was wrong."""
from __future__ import annotations

import numpy as np

__all__ = [
    "available_memory",
    "check_fits_in_memory",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_in_range",
    "check_square",
    "check_shape",
    "check_symmetric",
    "check_psd",
]


def check_finite(name: str, value) -> np.ndarray:
    """Return ``value`` as a float64 array; raise if any entry is NaN or inf."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got NaN or inf")
    return arr


def check_positive(name: str, value) -> np.ndarray:
    """``value > 0`` everywhere (scalars or arrays)."""
    arr = check_finite(name, value)
    if np.any(arr <= 0):
        raise ValueError(f"{name}: must be > 0, got {_show(arr)}")
    return arr


def check_nonnegative(name: str, value) -> np.ndarray:
    """``value >= 0`` everywhere (scalars or arrays)."""
    arr = check_finite(name, value)
    if np.any(arr < 0):
        raise ValueError(f"{name}: must be >= 0, got {_show(arr)}")
    return arr


def check_in_range(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=False) -> np.ndarray:
    """``lo <= value <= hi`` (open ends optional)."""
    arr = check_finite(name, value)
    bad = (arr <= lo if lo_open else arr < lo) | (arr >= hi if hi_open else arr > hi)
    if np.any(bad):
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ValueError(f"{name}: must lie in {lb}{lo}, {hi}{rb}, got {_show(arr)}")
    return arr


def check_square(name: str, A) -> np.ndarray:
    """A finite 2-D square matrix."""
    A = check_finite(name, A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name}: must be a square matrix, got shape {A.shape}")
    return A


def check_shape(name: str, A, shape: tuple[int, ...]) -> np.ndarray:
    """A finite array of exactly ``shape``."""
    A = check_finite(name, A)
    if A.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {A.shape}")
    return A


def check_symmetric(name: str, A, rtol: float = 1e-8) -> np.ndarray:
    """A finite square matrix with ``||A - A^T|| <= rtol * max(1, ||A||)``."""
    A = check_square(name, A)
    if np.linalg.norm(A - A.T) > rtol * max(1.0, np.linalg.norm(A)):
        raise ValueError(f"{name}: must be symmetric (||A - A^T|| = {np.linalg.norm(A - A.T):.3g})")
    return A


def check_psd(name: str, A, rtol: float = 1e-10) -> np.ndarray:
    """Symmetric and positive semi-definite up to ``-rtol * ||A||_2``."""
    A = check_symmetric(name, A)
    lam = np.linalg.eigvalsh(A)
    if lam[0] < -rtol * max(1.0, abs(lam[-1])):
        raise ValueError(f"{name}: must be positive semi-definite (smallest eigenvalue {lam[0]:.3g})")
    return A


def _show(arr: np.ndarray) -> str:
    if arr.size == 1:
        return f"{arr.item():g}"
    return f"values down to {arr.min():g} (array of shape {arr.shape})"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (``MemAvailable`` of ``/proc/meminfo``;
    else free physical pages; None where neither can be read)."""
    import os

    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(what: str, n_bytes: float) -> None:
    """Refuse (ConfigError naming ``what``) an allocation of ``n_bytes`` larger than the memory
    available, before it is made: Linux overcommits, so a too large array is not refused by
    ``MemoryError`` but killed later by the kernel with no message."""
    from .errors import ConfigError

    free = available_memory()
    if free is not None and n_bytes > free:
        raise ConfigError(f"{what} needs about {n_bytes / 2**30:.1f} GiB; {free / 2**30:.1f} GiB "
                          "are available: use a smaller grid (fewer values per axis, or a smaller "
                          "--n-save)")

