"""Resolved numerics of a run: device, bf16 autocast, channels_last, torch.compile, CPU threads.

``train.bf16`` / ``train.channels_last`` left unset (auto) are on for CUDA, and on CPU where the
processor computes bf16 natively (AMX or AVX512-BF16: oneDNN then runs bf16 convolutions and
matmuls on those units, 1.75-1.9x fp32 on one thread of such a machine; see ``python -m
realnet.tools.bench --cpu``); off on other CPUs, where bf16 is emulated and slower. DirectPred's
eigendecomposition, the running correlations and the loss stay float32 under autocast
(:mod:`realnet.predictors`, :mod:`realnet.losses`). ``torch.compile`` is CUDA-only.

CPU threads (:func:`apply_thread_policy`): ``train.threads`` when set; else ``OMP_NUM_THREADS``
when the environment sets it; else one intra-op thread. Two OpenMP threads on a 2-core machine
that runs anything else alternate between full speed and a crawl (each thread waits for a core
that another process holds at every barrier); one thread per run, and one run per core, is the
robust default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["Runtime", "resolve_runtime", "cpu_has_native_bf16", "apply_thread_policy"]


@dataclass(frozen=True)
class Runtime:
    """Resolved numerics: ``device`` and the auto flags; ``compile`` only on CUDA."""

    device: torch.device
    bf16: bool
    channels_last: bool
    compile: bool


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (the ``amx_bf16`` or ``avx512_bf16`` flag of
    ``/proc/cpuinfo``; False where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_runtime(cfg) -> Runtime:
    """Resolve ``device="auto"`` and the tri-state numerics flags of a
    :class:`realnet.config.TrainConfig` (module docstring). A CUDA device that is not there is
    refused (ValueError naming ``device``)."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={cfg.device!r}: CUDA is not available here; use device=cpu")
    device = torch.device(name)
    cuda = device.type == "cuda"
    fast = cuda or cpu_has_native_bf16()
    pick = lambda v: fast if v is None else bool(v)  # noqa: E731
    return Runtime(device, pick(cfg.train.bf16), pick(cfg.train.channels_last),
                   cuda and cfg.train.compile)


def apply_thread_policy(threads: int | None, device: torch.device) -> int:
    """Set torch's intra-op threads for a CPU run (module docstring) and return the number used.
    On CUDA nothing is changed (the host threads only launch kernels)."""
    if device.type != "cpu":
        return torch.get_num_threads()
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else 1
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
