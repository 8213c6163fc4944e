"""Atomic checkpoint writes, RNG capture/restore and the finiteness check."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from realnet.training import checkpoint as ck


def test_round_trip(tmp_path):
    p = tmp_path / "c" / "last.pt"
    state = {"step": 3, "w": torch.arange(5.0), "nested": {"a": [1, 2]}}
    ck.save_checkpoint(p, state)
    back = ck.load_checkpoint(p)
    assert back["step"] == 3 and torch.equal(back["w"], state["w"])
    assert back["nested"] == {"a": [1, 2]}
    assert os.listdir(p.parent) == ["last.pt"]  # no temporary file left behind


@pytest.mark.parametrize("crash_in", ["fsync", "replace"])
def test_a_crash_mid_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch, crash_in):
    p = tmp_path / "last.pt"
    ck.save_checkpoint(p, {"step": 1, "w": torch.ones(1000)})

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    # fsync: the new bytes are (partly) in the temporary file; replace: fully written, not moved.
    monkeypatch.setattr(ck.os, crash_in, crash)
    with pytest.raises(OSError, match="simulated crash"):
        ck.save_checkpoint(p, {"step": 2, "w": torch.zeros(1000)})
    monkeypatch.undo()
    back = ck.load_checkpoint(p)
    assert back["step"] == 1 and torch.equal(back["w"], torch.ones(1000))
    assert os.listdir(tmp_path) == ["last.pt"]


def test_a_killed_writer_never_leaves_a_torn_file(tmp_path):
    # A process rewriting a 16 MB checkpoint in a loop is SIGKILLed at an arbitrary moment; the
    # file on disk must still load and be one of the complete versions (all entries equal `step`).
    p = tmp_path / "last.pt"
    code = textwrap.dedent(f"""
        import sys, torch
        from realnet.training.checkpoint import save_checkpoint
        for step in range(1, 1000):
            w = torch.full((4_000_000,), float(step))
            save_checkpoint({str(p)!r}, {{"step": step, "w": w}})
            print(step, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())
    try:
        for _ in range(3):  # let a few complete writes happen, then kill during the next ones
            line = proc.stdout.readline()
            assert line, "the writer died before writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    back = ck.load_checkpoint(p)
    assert back["step"] >= 3
    assert torch.all(back["w"] == float(back["step"]))
    ck.remove_stale_temporaries(p)  # a killed write may leave its temporary file; it goes here
    assert os.listdir(tmp_path) == ["last.pt"]


def test_rng_state_round_trip():
    g = torch.Generator().manual_seed(5)
    state = ck.capture_rng_state({"aug": g})
    a = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=g))
    ck.restore_rng_state(state, {"aug": g})
    b = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=g))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert torch.equal(a[3], b[3])
    with pytest.raises(ValueError, match="other"):
        ck.restore_rng_state(state, {"other": torch.Generator()})


def test_all_finite_names_the_bad_tensor():
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    assert ck.all_finite(m) is None
    with torch.no_grad():
        m[1].running_var[0] = float("inf")
    assert ck.all_finite(m) == "1.running_var"
