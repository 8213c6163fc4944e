"""Resolved numerics of a run: device, bf16 autocast, channels_last, torch.compile, CPU threads.

``train.bf16`` / ``train.channels_last`` left unset (auto) are on for CUDA, and on CPU where the
processor computes bf16 natively (AMX or AVX512-BF16: oneDNN then runs bf16 convolutions and
matmuls on those units, 1.75-1.9x fp32 on one thread of such a machine; see ``python -m
realnet.tools.bench --cpu``); off on other CPUs, where bf16 is emulated and slower. DirectPred's
eigendecomposition, the running correlations and the loss stay float32 under autocast
(:mod:`realnet.methods.predictors`, :mod:`realnet.methods.losses`). ``torch.compile`` is CUDA-only.

CPU threads (:func:`apply_thread_policy`): ``train.threads`` when set; else ``OMP_NUM_THREADS``
when the environment sets it; else one intra-op thread. Two OpenMP threads on a 2-core machine
that runs anything else alternate between full speed and a crawl (each thread waits for a core
that another process holds at every barrier); one thread per run, and one run per core, is the
robust default.

channels_last and one oneDNN kernel (:func:`channels_last_hazard`): oneDNN's AVX2 kernel for the
weight gradient of a 1x1 convolution with stride > 1 on channels_last (nhwc) input with fewer than
8 input channels (its channel block on AVX2) writes past its workspace: heap corruption, then an
abort or a segfault (oneDNN issue #6035 of uxlfoundation/oneDNN, open; seen with oneDNN 3.12 in
torch 2.14.1). A CPU without AVX-512 takes that kernel, and so does an AVX-512 CPU capped with
``ONEDNN_MAX_CPU_ISA=AVX2``. Smallest reproducer::

    conv = torch.nn.Conv2d(4, 8, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(64, 4, 8, 8).to(memory_format=torch.channels_last)
    conv(x).sum().backward()   # ONEDNN_MAX_CPU_ISA=AVX2: "corrupted size vs. prev_size", abort

In this project such a convolution is a ResNet shortcut below width 0.125 (stage width < 8). Which
kernel oneDNN picks cannot be read through torch, so on any CPU such a trunk keeps the contiguous
layout: auto resolves channels_last off, and ``train.channels_last=true`` is refused in one line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
from analysis.errors import ConfigError

__all__ = ["Runtime", "resolve_runtime", "cpu_has_native_bf16", "cpu_model", "environment",
           "apply_thread_policy",
           "channels_last_hazard", "settle_channels_last"]

#: oneDNN's channel block on AVX2: fewer input channels than this trip the kernel of the module
#: docstring.
ONEDNN_AVX2_CHANNEL_BLOCK = 8


@dataclass(frozen=True)
class Runtime:
    """Resolved numerics: ``device`` and the auto flags; ``compile`` only on CUDA."""

    device: torch.device
    bf16: bool
    channels_last: bool
    compile: bool


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


#: oneDNN ISA caps (``ONEDNN_MAX_CPU_ISA``) that still allow native bf16 kernels; any other cap
#: (AVX2, AVX512_CORE, ...) makes oneDNN emulate bf16, as on a CPU without it.
BF16_ISAS = frozenset({"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                       "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
                       "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "DEFAULT", "ALL"})


def cpu_has_native_bf16() -> bool:
    """Whether bf16 runs natively here: the CPU has the ``amx_bf16`` or ``avx512_bf16`` flag of
    ``/proc/cpuinfo`` (False where that file does not exist) and ``ONEDNN_MAX_CPU_ISA``, when
    set, does not cap oneDNN below bf16 (:data:`BF16_ISAS`), so that a capped run resolves its
    auto numerics as the capped CPU would."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap and cap not in BF16_ISAS:
        return False
    return bool(set(_cpuinfo().get("flags", "").split()) & {"amx_bf16", "avx512_bf16"})


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else :func:`platform.processor`)."""
    import platform

    return _cpuinfo().get("model name") or platform.processor() or "unknown"


#: The distributions whose versions a run records (every direct dependency; constraints.txt locks
#: them and their own dependencies).
RECORDED_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "sympy", "matplotlib", "numba",
                     "scikit-learn", "pillow", "tqdm", "tensorboard")

#: Environment variables that change which kernels run (ISA caps, threads).
NUMERICS_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS",
                "MKL_NUM_THREADS")


def environment() -> dict[str, object]:
    """What a run's numbers depend on besides its config: Python and every recorded library's
    version, the oneDNN version, the CPU's model and ATen's capability, native bf16, and the
    environment variables of :data:`NUMERICS_ENV` that are set."""
    import platform
    import re
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    onednn = re.search(r"MKL-DNN v([\d.]+)", torch.__config__.show())
    return {
        "python": platform.python_version(), "packages": versions,
        "onednn": onednn.group(1) if onednn else None,
        "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "env": {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ},
    }


def resolve_runtime(cfg) -> Runtime:
    """Resolve ``device="auto"`` and the tri-state numerics flags of a
    :class:`realnet.config.train_config.TrainConfig` (module docstring). A CUDA device that is not there is
    refused (ValueError naming ``device``)."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={cfg.device!r}: CUDA is not available here; use device=cpu")
    device = torch.device(name)
    cuda = device.type == "cuda"
    fast = cuda or cpu_has_native_bf16()
    pick = lambda v: fast if v is None else bool(v)  # noqa: E731
    return Runtime(device, pick(cfg.train.bf16), pick(cfg.train.channels_last),
                   cuda and cfg.train.compile)


def channels_last_hazard(model: torch.nn.Module) -> str | None:
    """The first convolution of ``model`` that oneDNN's AVX2 weight-gradient kernel corrupts memory
    on under channels_last (module docstring: 1x1, stride > 1, fewer than 8 input channels),
    described in words; None when there is none."""
    for name, m in model.named_modules():
        if (isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                and m.in_channels < ONEDNN_AVX2_CHANNEL_BLOCK):
            return (f"{name} is a 1x1 convolution with stride {m.stride[0]} and "
                    f"{m.in_channels} input channels")
    return None


def settle_channels_last(rt: Runtime, requested: bool | None, model: torch.nn.Module) -> Runtime:
    """``rt`` with channels_last kept only where it is safe for ``model`` (module docstring): on a
    CPU, a model with a :func:`channels_last_hazard` runs contiguous when ``requested`` is None
    (auto) and is refused (ValueError naming ``train.channels_last``) when it is True."""
    if not rt.channels_last or rt.device.type != "cpu":
        return rt
    hazard = channels_last_hazard(model)
    if hazard is None:
        return rt
    if requested:
        raise ConfigError(f"train.channels_last=true is refused on CPU for this trunk: {hazard}, "
                         "which oneDNN's AVX2 kernel corrupts memory on (oneDNN issue #6035); use "
                         "model.width >= 0.125 or leave train.channels_last unset")
    return replace(rt, channels_last=False)


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
