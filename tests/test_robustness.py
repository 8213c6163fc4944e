"""One writer per run folder, a failed start claims nothing, Ctrl-C checkpoints, sweeps never mix
configurations or leave orphans (realnet.training.trainer, analysis.runs.folder_lock, realnet.sweeps)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.runs import FolderBusyError, folder_lock
from realnet.config.train_config import load_config
from realnet.data.datasets import MissingDatasetError, load_images

ROOT = Path(__file__).resolve().parents[1]


def _realnet(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "realnet", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, **kw)


def test_a_second_writer_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    with folder_lock(out):
        r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=5")
        assert r.returncode == 5 and f"pid {os.getpid()}" in r.stderr and "Traceback" not in r.stderr
        with pytest.raises(FolderBusyError, match="another process"):
            with folder_lock(out):
                pass
    # a holder killed with SIGKILL: the OS drops its lock
    holder = subprocess.Popen([sys.executable, "-c", "import time, sys; from analysis.runs import folder_lock\n"
                               f"with folder_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusyError):
        with folder_lock(out):
            pass
    holder.kill()
    holder.wait()
    with folder_lock(out):
        pass


def test_a_failed_start_claims_nothing_and_the_data_path_does_not_block_a_resume(tmp_path):
    out = tmp_path / "run"
    r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "data.dataset=cifar10",
                 f"data.root={tmp_path / 'nowhere'}", "train.steps=3", "train.batch_size=8")
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert not (out / "config.json").exists()
    # the corrected retry starts; a later resume with another data.root is accepted
    r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=6",
                 "--stop-after", "3")
    assert r.returncode == 0, r.stderr
    r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=6",
                 f"data.root={tmp_path / 'elsewhere'}")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["data"]["root"] == str(tmp_path / "elsewhere")
    r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=6",
                 "optim.lr=0.1")
    assert r.returncode == 2 and "optim.lr" in r.stderr  # a key that changes the result still does


def test_tilde_in_data_root_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MissingDatasetError) as err:
        load_images("cifar10", "~/data", "train")
    assert str(tmp_path / "data") in str(err.value) and "~" not in str(err.value)
    assert not Path("~").exists()


def test_out_pointing_at_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = _realnet("train", "--config", "digits", "--out", str(f), "--quiet", "train.steps=2")
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_checkpoints_the_current_step_and_the_run_resumes(tmp_path, sig):
    """The step under way is completed and checkpointed (not the last periodic checkpoint), the
    process ends with one line and 128 + signal, and the same command finishes the run."""
    from realnet.training.checkpoint import CHECKPOINT, load_checkpoint

    out = tmp_path / "run"
    args = ["train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=400",
            "log.every=1", "log.checkpoint_every=1000", "log.spectra_every=0", "eval.linear_probe=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "realnet", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 5):
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "resume" in err
    step = load_checkpoint(out / CHECKPOINT)["step"]
    assert 5 <= step < 400
    r = _realnet(*args)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 400


def test_sweep_folder_has_one_writer(tmp_path):
    from realnet.sweeps import runner as sw
    from realnet.sweeps.spec import sweep_from_dict

    spec = sweep_from_dict({"name": "t", "base": "digits", "seeds": [0],
                            "tables": [{"name": "a", "settings": [{"label": "x"}]}]}, "t.toml")
    with folder_lock(tmp_path, "sweep folder"):
        with pytest.raises(FolderBusyError, match="sweep folder"):
            sw.run_sweep(spec, tmp_path, launcher=lambda *a: None, quiet=True)


def test_sigterm_to_the_sweep_reaches_its_runs(tmp_path):
    """The sweep forwards SIGTERM to its running child, which checkpoints; no orphan is left."""
    sweep = tmp_path / "s.toml"
    sweep.write_text('name = "s"\nbase = "digits"\nseeds = [0]\n[overrides]\n"train.steps" = 400\n'
                     '"log.every" = 1\n"log.spectra_every" = 0\n"eval.linear_probe" = false\n'
                     '[[tables]]\nname = "a"\n[[tables.settings]]\nlabel = "x"\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "realnet.sweeps", str(sweep), "--out", str(out), "--quiet"],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "base" / "seed0" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    status = json.loads((out / "base" / "seed0" / "sweep_status.json").read_text())
    assert status["status"] == "interrupted"
    left = subprocess.run(["pgrep", "-f", f"--out {out}/base/seed0"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_corrupt_files_and_non_runs_end_in_one_line(tmp_path):
    out = tmp_path / "run"
    r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=4", "--stop-after", "2")
    assert r.returncode == 0, r.stderr
    ckpt = out / "checkpoints" / "last.pt"
    for damage in (b"", ckpt.read_bytes()[:100]):  # empty, truncated
        ckpt.write_bytes(damage)
        for args in (["train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=4"],
                     ["eval", str(out)]):
            r = _realnet(*args)
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            assert "last.pt" in r.stderr and "delete it" in r.stderr
    r = _realnet("eval", str(tmp_path))
    assert r.returncode == 2 and "not a run folder" in r.stderr and "Traceback" not in r.stderr
    (out / "config.json").write_bytes(b"\xff\xfe not json")
    r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=4")
    assert r.returncode == 2 and "config.json" in r.stderr and "Traceback" not in r.stderr


def test_a_corrupt_summary_of_a_finished_run_is_rebuilt_on_resume(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=4"]
    assert _realnet(*args).returncode == 0
    (out / "summary.json").write_text("{torn")
    from analysis.runs import run_status

    assert run_status(out) == "partial"  # not "done": tables and sweeps agree
    r = _realnet(*args)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


def test_numerical_failure_in_a_step_is_a_divergence(tmp_path):
    """The optimal predictor's solve on an exploding F raises FloatingPointError/LinAlgError inside
    the step: exit 3 (a result the sweep records as nonfinite), not 2 (bad config)."""
    r = _realnet("train", "--config", "digits", "--out", str(tmp_path / "r"), "--quiet", "train.steps=30",
                 "optim.lr=1e6", "predictor.name=optimal")
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr


def test_analysis_refuses_unfinished_runs_and_reports_them_apart(tmp_path):
    from analysis.__main__ import main as analysis_main

    out = tmp_path / "run"
    r = _realnet("train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=4", "--stop-after", "2")
    assert r.returncode == 0
    assert analysis_main(["compare", str(out)]) == 2
    assert analysis_main(["scorecard", str(out), "--out", str(tmp_path / "sc")]) == 2
    from analysis.report import report_runs

    _, md = report_runs([out])
    assert "seed 0: partial" in md


def test_garbage_metrics_line_warns(tmp_path):
    from analysis.runs import read_jsonl

    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\nnot json\n{"step": 2}\n{"step": 3, "tor')
    with pytest.warns(UserWarning, match="line 2"):
        rows = read_jsonl(p)
    assert [r["step"] for r in rows] == [1, 2]


def test_runaway_sizes_are_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="data.image_size"):
        load_config("digits", ["data.image_size=1000"])
    r = subprocess.run([sys.executable, "-m", "dynamics", "modes", "--t-end", "1e15", "--quiet", "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "t_end" in r.stderr and "Traceback" not in r.stderr


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """A file where the output folder should go (the portable stand-in for a read-only or full
    disk, which root cannot simulate): every CLI stops at once with one line naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = str(blocker / "sub")
    cmds = [[sys.executable, "-m", "dynamics", "modes", "--quiet", "--out", out],
            [sys.executable, "-m", "realnet", "train", "--config", "digits", "--quiet", "--out", out],
            [sys.executable, "-m", "analysis", "scorecard", str(tmp_path), "--out", out]]
    for cmd in cmds:
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (cmd, r.stderr)
        assert str(blocker) in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert time.time() - t0 < 60


def test_non_utf8_config_and_a_damaged_snapshot_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'seed = 0\n[data]\ndataset = "digits\xff"\n')
    r = _realnet("train", "--config", str(bad), "--out", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 2 and "bad.toml" in r.stderr and "Traceback" not in r.stderr
    from analysis.runs import read_snapshot_file

    npz = tmp_path / "step_0000010.npz"
    npz.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(ValueError, match="step_0000010.npz"):
        read_snapshot_file(npz)


def test_export_never_writes_over_a_runs_files_nor_over_a_file_without_force(tmp_path):
    run = tmp_path / "run"
    assert _realnet("train", "--config", "digits", "--out", str(run), "--quiet", "train.steps=2",
                    "model.width=0.0625", "data.train_limit=200", "data.test_limit=100",
                    "eval.probe_epochs=1", "log.spectra_every=0").returncode == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for target in (run / "summary.pt", run / "config.pt", run / "checkpoints" / "last.pt"):
        r = _realnet("export", str(run), "--out", str(target))
        assert r.returncode == 2 and "inside the run folder" in r.stderr and "Traceback" not in r.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing replaced
    assert _realnet("export", str(run)).returncode == 0  # the documented output: trunk.pt
    r = _realnet("export", str(run))
    assert r.returncode == 2 and "exists; pass --force" in r.stderr
    assert _realnet("export", str(run), "--force").returncode == 0
    elsewhere = tmp_path / "trunk.pt"
    assert _realnet("export", str(run), "--out", str(elsewhere)).returncode == 0 and elsewhere.is_file()


def test_an_empty_summary_is_not_a_finished_run(tmp_path):
    from analysis.runs import run_status

    (tmp_path / "summary.json").write_text("{}")
    assert run_status(tmp_path) != "done"
    (tmp_path / "summary.json").write_text('{"steps": 2, "wall_time_s": 1.0}')
    assert run_status(tmp_path) == "done"


def test_an_interrupted_writes_temporaries_are_removed_on_the_next_start(tmp_path):
    run = tmp_path / "run"
    args = ("train", "--config", "digits", "--out", str(run), "--quiet", "train.steps=4",
            "model.width=0.0625", "data.train_limit=200", "data.test_limit=100",
            "eval.probe_epochs=1", "log.spectra_every=2")
    assert _realnet(*args, "--stop-after", "2").returncode == 0
    torn = [run / ".summary.json.k1x2.tmp", run / "spectra" / ".step_0000004.npz.q9.tmp"]
    for p in torn:  # what a kill during an .npz or summary.json write leaves behind
        p.write_bytes(b"torn")
    assert _realnet(*args).returncode == 0
    assert not any(p.exists() for p in torn)
    assert not list(run.rglob(".*.tmp"))


def _start_sweep(tmp_path: Path, steps: int = 400) -> tuple[subprocess.Popen, Path]:
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'name = "s"\nbase = "digits"\nseeds = [0]\n[overrides]\n"train.steps" = {steps}\n'
                     '"log.every" = 1\n"log.spectra_every" = 0\n"eval.linear_probe" = false\n'
                     '[[tables]]\nname = "a"\n[[tables.settings]]\nlabel = "x"\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "realnet.sweeps", str(sweep), "--out", str(out), "--quiet"],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "base" / "seed0" / "metrics.jsonl"
    before = metrics.read_text().count("\n") if metrics.exists() else 0
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= before + 5):
        time.sleep(0.05)
    return proc, out


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_sweep_takes_its_runs_with_it_and_a_rerun_resumes(tmp_path):
    """SIGKILL of the sweep runner: its run gets SIGTERM from the kernel (die_with_parent),
    checkpoints and exits, so nothing trains on as an orphan and a rerun is not refused."""
    proc, out = _start_sweep(tmp_path)
    kids = _children(proc.pid)
    assert len(kids) == 1
    proc.kill()
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and Path(f"/proc/{kids[0]}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{kids[0]}").exists()  # the run ended with its launcher
    assert (out / "base" / "seed0" / "checkpoints" / "last.pt").is_file()
    again, out = _start_sweep(tmp_path)  # resumes at once: the run's folder lock is free
    os.killpg(again.pid, signal.SIGTERM)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 128 + signal.SIGTERM and "1 run(s) under way checkpointed" in err, err


def test_a_terminal_ctrl_c_reaches_each_run_once(tmp_path):
    """A Ctrl-C at a terminal signals the whole foreground process group. The runs have their own
    session, so only the sweep gets it, and it passes it on exactly once: the run checkpoints
    (interrupted, exit 130), whatever the timing of a second signal."""
    proc, out = _start_sweep(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in err, err
    status = json.loads((out / "base" / "seed0" / "sweep_status.json").read_text())
    assert status["status"] == "interrupted" and status["returncode"] == 130
    assert "1 run(s) under way checkpointed" in err


def test_a_foreign_checkpoint_or_config_is_named_in_one_line(tmp_path):
    """A checkpoint of another model (width 0.0625 in a width-0.125 folder), one without model
    weights, and a config.json holding ``[]``: train, eval and export each end in one line (exit
    2) naming the file, not a KeyError / size-mismatch / AttributeError traceback."""
    import torch

    args = ("--quiet", "train.steps=2", "data.train_limit=200", "data.test_limit=100",
            "eval.probe_epochs=1", "log.spectra_every=0")
    small, big = tmp_path / "small", tmp_path / "big"
    assert _realnet("train", "--config", "digits", "--out", str(small), "model.width=0.0625", *args).returncode == 0
    assert _realnet("train", "--config", "digits", "--out", str(big), "--stop-after", "1", *args).returncode == 0
    ckpt = big / "checkpoints" / "last.pt"
    ckpt.write_bytes((small / "checkpoints" / "last.pt").read_bytes())
    commands = (("train", "--config", "digits", "--out", str(big), *args), ("eval", str(big)),
                ("export", str(big), "--out", str(tmp_path / "t.pt")))
    for cmd in commands[:2]:
        r = _realnet(*cmd)
        assert r.returncode == 2 and "written for another model" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr  # one error line (eval also shows its phases)
        assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    torch.save({"step": 1}, ckpt)
    for cmd in commands:
        r = _realnet(*cmd)
        assert r.returncode == 2 and "last.pt" in r.stderr and "Traceback" not in r.stderr, r.stderr
    (big / "config.json").write_text("[]")
    for cmd in commands:
        r = _realnet(*cmd)
        assert r.returncode == 2 and "config.json" in r.stderr and "Traceback" not in r.stderr, r.stderr


def _signal_self_in(monkeypatch, module, name: str, sig: int) -> None:
    """Replace ``module.name`` by the same function that first sends ``sig`` to this process,
    so the signal lands inside that phase; the handler raises at the next bytecode."""
    real = getattr(module, name)

    def wrapped(*a, **kw):
        result = real(*a, **kw)  # the phase's work done (its file written), then the signal
        os.kill(os.getpid(), sig)
        time.sleep(1)  # not reached: the handler raises first
        return result

    monkeypatch.setattr(module, name, wrapped)


@pytest.mark.parametrize("where, sig", [
    ("run_data", signal.SIGINT), ("_snapshot", signal.SIGTERM), ("_finish", signal.SIGINT)])
def test_a_signal_outside_the_steps_is_one_line_and_the_rerun_finishes(tmp_path, monkeypatch,
                                                                       capsys, where, sig):
    """Loading data, the step-0 snapshot and the final evaluation: SIGINT/SIGTERM end the command
    in one line naming the phase and exit 128 + signal (not a KeyboardInterrupt traceback, not a
    silent 143); the same command then finishes the run, each snapshot logged once."""
    import realnet.training.parts as parts
    import realnet.training.trainer as trainer
    from realnet.__main__ import main

    module = parts.OwnParts if where == "run_data" else trainer
    _signal_self_in(monkeypatch, module, where, sig)
    out = tmp_path / "run"
    args = ["train", "--config", "digits", "--out", str(out), "--quiet", "train.steps=4",
            "log.spectra_every=2", "eval.linear_probe=false"]
    assert main(args) == 128 + sig
    err = capsys.readouterr().err.strip().splitlines()
    phase = {"run_data": "loading digits", "_snapshot": "spectra snapshot at step 0",
             "_finish": "final evaluation"}[where]
    assert len(err) == 1 and err[0].startswith(f"stopped: {signal.Signals(sig).name} during {phase}"), err
    monkeypatch.undo()
    assert main(args) == 0
    steps = [json.loads(line)["step"] for line in (out / "spectra.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4]
    assert json.loads((out / "summary.json").read_text())["steps"] == 4
