"""What an AVX2-only CPU (an AMD EPYC, say) runs, run here too.

PyTorch and oneDNN pick their kernels by the CPU's instruction set. A machine with AVX-512 and
AMX never reaches the AVX2 kernels that most other x86-64 CPUs run, so a bug there stays
invisible to it: oneDNN's AVX2 weight-gradient kernel of a strided 1x1 convolution on
channels_last input with fewer than 8 channels corrupts the heap (realnet.training.runtime's docstring;
oneDNN issue #6035), which aborted the whole suite on an AVX2 machine. Here the tests that touch
numerics, the memory format and the fast path run again in a subprocess with both libraries
capped at AVX2 (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``), so every machine runs
what an AVX2 machine runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analysis.errors import ConfigError
from realnet.config.train_config import load_config
from realnet.data.datasets import dataset_spec
from realnet.nets.ssl_model import build_ssl_model
from realnet.training.runtime import Runtime, channels_last_hazard, settle_channels_last

ROOT = Path(__file__).resolve().parents[1]
AVX2_CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
#: The tests that train, time or compare numerics (every memory format and the fast path).
NUMERICS_TESTS = ["tests/test_bench.py", "tests/test_train.py", "tests/test_paper_step.py",
                  "tests/test_predictors.py", "tests/test_objectives.py", "tests/test_augment.py",
                  "tests/test_models.py", "tests/test_losses.py", "tests/test_checkpoint.py",
                  "tests/test_other_cpus.py"]


def _model(width: float):
    cfg = load_config("digits", [f"model.width={width}"])
    return build_ssl_model(cfg, dataset_spec("digits"))


def test_the_narrow_trunks_shortcut_is_the_hazard_and_channels_last_is_settled_off():
    assert channels_last_hazard(_model(0.125)) is None  # 8-channel shortcut: oneDNN's block
    hazard = channels_last_hazard(_model(0.0625))
    assert hazard is not None and "layer2.0.downsample.0" in hazard and "4 input channels" in hazard
    cpu = Runtime(torch.device("cpu"), bf16=False, channels_last=True, compile=False)
    assert settle_channels_last(cpu, None, _model(0.0625)).channels_last is False  # auto: off
    assert settle_channels_last(cpu, None, _model(0.125)).channels_last is True
    with pytest.raises(ConfigError, match="train.channels_last=true is refused"):
        settle_channels_last(cpu, True, _model(0.0625))


@pytest.mark.skipif(os.environ.get("ONEDNN_MAX_CPU_ISA") is not None,
                    reason="already running under an ISA cap (this is the capped run)")
def test_the_numerics_tests_pass_with_the_isa_capped_at_avx2():
    env = {**os.environ, **AVX2_CAPS, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        *NUMERICS_TESTS], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=1200)
    tail = (r.stdout + r.stderr)[-4000:]
    assert r.returncode == 0, tail  # a heap corruption shows as -6 / -11 (abort, segfault)
    assert " passed" in tail and "failed" not in tail
