"""How a sweep's runs are started: here, one process each (:func:`realnet.sweeps.runner.launch_subprocess`),
under ``torchrun`` on this machine (``--nproc N``: data-parallel runs, :mod:`realnet.training.distributed`),
or on a cluster through SLURM (``--slurm``: one batch script per unfinished run and a
``submit_all.sh`` that hands them to ``sbatch``; the scheduler is SLURM's, none is built here).

Every run resumes from its own checkpoint, so a script that is submitted twice, or a job that is
pre-empted and requeued, continues where the run stopped. When the jobs are done, the same
``python -m realnet.sweeps FILE --out DIR`` (every run finished: nothing to launch) or ``python -m
realnet.sweeps.tables DIR`` writes the tables."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Sequence

from analysis.runs import atomic_file
from analysis.errors import ConfigError

__all__ = ["realnet_command", "slurm_script", "write_slurm_scripts", "SLURM_DIR"]

#: Where ``--slurm`` writes the scripts, inside the sweep's output folder.
SLURM_DIR = "slurm"


def realnet_command(base: str, folder: Path, overrides: Sequence[str], *, nproc: int = 1) -> list[str]:
    """The ``python -m realnet train`` command line of one run; with ``nproc > 1`` under
    ``torchrun --standalone --nproc_per_node nproc`` (one machine, data-parallel)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"--nproc={nproc!r} is invalid: allowed an integer >= 1")
    prefix = [sys.executable]
    if nproc > 1:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*prefix, "-m", "realnet", "train", "--config", base, "--out", str(folder), "--quiet",
            *overrides]


def slurm_script(cmd: Sequence[str], *, job_name: str, folder: Path, root: Path,
                 options: Sequence[str] = ()) -> str:
    """A batch script that runs ``cmd`` in ``root`` with the output in ``folder/slurm-<job>.out``;
    ``options`` become ``#SBATCH`` lines (``--gres=gpu:1``, ``--time=02:00:00``, ...)."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}",
             f"#SBATCH --output={folder.resolve()}/slurm-%j.out", "#SBATCH --ntasks=1"]
    for opt in options:
        opt = opt.strip()
        if not opt.startswith("--") or "\n" in opt:
            raise ConfigError(f"--slurm-option {opt!r} is invalid: allowed one sbatch option "
                             "starting with -- (e.g. --gres=gpu:1)")
        lines.append(f"#SBATCH {opt}")
    lines += ["set -euo pipefail", f"cd {shlex.quote(str(root.resolve()))}",
              f"export PYTHONPATH={shlex.quote(str(root.resolve()))}${{PYTHONPATH:+:$PYTHONPATH}}",
              f"mkdir -p {shlex.quote(str(folder.resolve()))}",
              "# the run resumes from its checkpoint if it was started before",
              "srun " + " ".join(shlex.quote(c) for c in cmd), ""]
    return "\n".join(lines)


def write_slurm_scripts(out: Path, sweep_name: str, runs: Sequence[tuple[str, list[str]]], *,
                        root: Path, options: Sequence[str] = ()) -> list[Path]:
    """``out/slurm/<run>.sbatch`` for every ``(folder, command)`` and ``out/slurm/submit_all.sh``
    (``sbatch`` on each); returns the paths written (scripts first)."""
    folder = out / SLURM_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for run_folder, cmd in runs:
        name = run_folder.replace("/", "__")
        path = folder / f"{name}.sbatch"
        text = slurm_script(cmd, job_name=f"{sweep_name}-{name}", folder=out / run_folder,
                            root=root, options=options)
        with atomic_file(path) as tmp:
            Path(tmp).write_text(text)
        paths.append(path)
    submit = folder / "submit_all.sh"
    body = ["#!/bin/bash", "# submit every unfinished run of the sweep (rerun the sweep command with",
            "# --slurm to refresh this list); each job resumes its run from its checkpoint",
            "set -euo pipefail", 'cd "$(dirname "$0")"']
    body += [f"sbatch {shlex.quote(p.name)}" for p in paths]
    with atomic_file(submit) as tmp:
        Path(tmp).write_text("\n".join(body) + "\n")
    submit.chmod(0o755)
    return [*paths, submit]
