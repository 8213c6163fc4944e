"""The sweep's optional submitit backend (``python -m realnet.sweeps FILE --out DIR --submitit``;
``pip install 'ssl-dynamics[submitit]'``), beside the plain sbatch scripts of
:mod:`realnet.sweeps.launchers`.

Every unfinished run becomes one job of a SLURM job array submitted through submitit
(``AutoExecutor``: SLURM where ``sbatch`` exists, ``--submitit-cluster local`` runs the jobs as
local processes, which the tests use), with its logs in ``DIR/submitit/<job id>/``. A job runs the
run's ``python -m realnet train`` command (:func:`realnet.sweeps.launchers.realnet_command`) in a
child process. When SLURM pre-empts the job or its time runs out, submitit calls
:meth:`RunCommand.checkpoint`: the child gets SIGTERM (the trainer checkpoints the step under way
and exits 143) and the job is requeued with the same command, which resumes the run from that
checkpoint. ``--slurm-option --key=value`` options become submitit's
``slurm_additional_parameters``. The submission returns at once (the job ids are written to
``DIR/submitit/jobs.json``); once the jobs are done, the same sweep command (nothing left to run)
or ``python -m realnet.sweeps.tables DIR`` writes the tables.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from analysis.errors import ConfigError
from analysis.runs import write_json_atomic

__all__ = ["SUBMITIT_DIR", "RunCommand", "slurm_parameters", "submit_runs"]

#: Where the backend keeps submitit's files (pickled jobs, logs) inside the sweep's folder.
SUBMITIT_DIR = "submitit"


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("--submitit is invalid here: allowed only with the submitit package "
                          "installed (pip install 'ssl-dynamics[submitit]'); --slurm writes plain "
                          "sbatch scripts without it") from None
    return submitit


class RunCommand:
    """One run's command as a submitit job: run it in ``cwd`` and return its exit status; on
    pre-emption or timeout (:meth:`checkpoint`) stop it cleanly and requeue the same command."""

    def __init__(self, cmd: Sequence[str], cwd: str | Path) -> None:
        self.cmd, self.cwd = list(cmd), str(cwd)
        self._proc: subprocess.Popen | None = None

    def __call__(self) -> int:
        env = dict(os.environ)  # the job's own environment, with the project importable
        env["PYTHONPATH"] = self.cwd + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=env)
        rc = self._proc.wait()
        if rc != 0:
            raise RuntimeError(f"{' '.join(self.cmd)} exited {rc}")
        return rc

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit before a requeue: SIGTERM to the run (it checkpoints its step),
        then the same command again, which resumes."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
        return _submitit().helpers.DelayedSubmission(RunCommand(self.cmd, self.cwd))

    def __getstate__(self) -> dict[str, Any]:  # the live process does not travel with the job
        return {"cmd": self.cmd, "cwd": self.cwd, "_proc": None}


def slurm_parameters(options: Sequence[str]) -> dict[str, str]:
    """``--key=value`` sbatch options as submitit's ``slurm_additional_parameters``."""
    out = {}
    for opt in options:
        opt = opt.strip()
        if not opt.startswith("--") or "=" not in opt or "\n" in opt:
            raise ConfigError(f"--slurm-option {opt!r} is invalid with --submitit: allowed "
                              "--key=value (e.g. --gres=gpu:1)")
        key, value = opt[2:].split("=", 1)
        out[key.replace("-", "_")] = value
    return out


def submit_runs(out: Path, name: str, runs: Sequence[tuple[str, list[str]]], *, root: Path,
                options: Sequence[str] = (), cluster: str | None = None) -> list[Any]:
    """Submit ``runs`` (``(folder, command)``) as one job array; returns the submitit jobs and
    writes ``out/submitit/jobs.json`` (run folder -> job id)."""
    submitit = _submitit()
    folder = Path(out) / SUBMITIT_DIR
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    params: dict[str, Any] = {"name": f"sweep-{name}", "timeout_min": 24 * 60}
    extra = slurm_parameters(options)
    if extra and executor.cluster == "slurm":
        params["slurm_additional_parameters"] = extra
    executor.update_parameters(**params)
    jobs = []
    with executor.batch():
        for _, cmd in runs:
            jobs.append(executor.submit(RunCommand(cmd, root)))
    write_json_atomic(folder / "jobs.json", {run: job.job_id for (run, _), job in zip(runs, jobs)})
    return jobs
