"""Sweeps of real training runs: a grid of settings times seeds, launched as ``python -m realnet
train`` subprocesses, then aggregated into paper-style tables (Tables 6-7) by
:mod:`realnet.sweeps.tables`.

Run: ``python -m realnet.sweeps SWEEP.toml --out DIR [--jobs N] [--dry-run] [--retry-failed]``.

A sweep file (TOML)::

    name = "cpu"                        # optional, shown in the tables
    base = "fmnist_directpred"          # a shipped realnet config or a TOML path (relative to
                                        # the sweep file)
    seeds = [0, 1]
    [overrides]                         # fixed for every run; dotted keys, quoted or bare
    "train.steps" = 150

    [[tables]]                          # one paper-style table
    name = "freq"
    title = "DirectPred: frequency of setting Wp"
    rows = "predictor.freq"             # grid key of the rows
    [tables.grid]
    "predictor.freq" = [1, 2, 5, 10]

    [[tables]]                          # a 2-D table: rows x cols
    name = "cj_freq"
    rows = "predictor.freq"
    cols = "predictor.cj"
    [tables.grid]
    "predictor.freq" = [1, 2]
    "predictor.cj" = [0.1, 0.05, 0.0, -0.05, -0.1]

    [[tables]]                          # or a list of named settings (rows = their labels)
    name = "predictors"
    [[tables.settings]]
    label = "linear SGD"
    overrides = { "predictor.name" = "linear" }

Every grid point is resolved with :func:`realnet.config.train_config.load_config` (base, fixed overrides,
setting, seed) before anything is launched; an unknown key or invalid value anywhere stops the
sweep with a message naming the table, the setting and the key. Identical resolved configs are
run once: the folder of a setting is named by the keys in which its resolved config differs
from ``base + overrides`` (``cj=-0.05_freq=2``; ``base`` when none), so a setting shared by two
tables (``freq = 1`` in the freq table and ``c_j = 0, freq = 1`` in the c_j table) is one folder.

Run folders: ``DIR/<setting>/seed<k>/`` (the realnet run folder) plus ``sweep.log`` (the
subprocess output) and ``sweep_status.json`` (outcome of the last attempt). A run with a
``summary.json`` is finished and skipped; a run stopped half-way is resumed (the realnet command
resumes from its checkpoint); a run that stopped on NaN/inf (realnet exit status 3) is a result
(``nonfinite``, counted as collapsed) and is not retried unless ``--retry-failed``; any other
failure is recorded and retried by the next invocation. ``DIR/sweep.json`` is the manifest
(tables, settings, folders) that :mod:`realnet.sweeps.tables` reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from analysis.process import PARENT_ENV, StopSignals
from analysis.runs import (COMPACT_SNAPSHOTS, CONFIG, SPECTRA_DIR, SUMMARY, SWEEP_STATUS, FolderBusyError,
                           folder_lock, read_json, run_status, write_compact_snapshots, write_json_atomic)

from analysis.textio import doc_summary
from realnet.sweeps.launchers import realnet_command, write_slurm_scripts
from realnet.sweeps.plan import PlannedRun, plan_runs, setting_folder_name
from realnet.sweeps.spec import Setting, SweepSpec, TableSpec, load_sweep, override_strings, sweep_from_dict
from analysis.errors import ConfigError

__all__ = [
    "Setting",
    "TableSpec",
    "SweepSpec",
    "PlannedRun",
    "RunOutcome",
    "load_sweep",
    "sweep_from_dict",
    "override_strings",
    "plan_runs",
    "setting_folder_name",
    "run_state",
    "realnet_command",
    "launch_subprocess",
    "run_sweep",
    "write_manifest",
    "main",
]

#: realnet's exit status for a run stopped by a NaN/inf loss or weight (a result, not a crash).
EXIT_NON_FINITE = 3
STATUS_FILE = SWEEP_STATUS
LOG_FILE = "sweep.log"
MANIFEST = "sweep.json"

@dataclass
class RunOutcome:
    """Result of one attempt: ``status`` is ``done``, ``nonfinite`` (a result: NaN/inf during
    training), ``interrupted`` (stopped by a signal after a checkpoint; resumes), ``failed`` (a
    crash: bad config, missing data, ...) or ``skipped``."""

    status: str
    returncode: int | None
    wall_s: float
    message: str = ""


def _same_config(saved: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a saved config.json describes ``config`` (read back through realnet's loader, so
    keys added to realnet's config later take their defaults, as when realnet resumes)."""
    from realnet.config.diff import result_changes
    from realnet.config.train_config import config_from_dict

    try:
        return not result_changes(config_from_dict(saved), config_from_dict(config))
    except (ValueError, TypeError):
        return False


def run_state(folder: Path, config: dict[str, Any]) -> str:
    """``done`` (summary.json), ``nonfinite`` (last attempt stopped on NaN/inf), ``conflict``
    (the folder holds a run of another config), ``partial`` (a checkpoint to resume from),
    ``failed`` (last attempt crashed, nothing to resume) or ``new``."""
    cfg_path = folder / CONFIG
    if cfg_path.is_file():
        old = read_json(cfg_path)
        if old is not None and not _same_config(old, config):
            return "conflict"
    status = run_status(folder)
    return "new" if status == "missing" else status


def _child_env(jobs: int) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the project root, importable as is
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if jobs > 1 and "OMP_NUM_THREADS" not in env:  # share the cores between parallel runs
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


#: The children running now (:func:`launch_subprocess`), to forward signals to.
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def launch_subprocess(cmd: list[str], folder: Path, env: dict[str, str]) -> RunOutcome:
    """Run ``cmd`` with its output appended to ``folder/sweep.log``; map realnet's exit status
    to an outcome (0 done, 3 nonfinite, 130/143 interrupted by a signal after a checkpoint,
    anything else failed). While it runs the child is in :data:`_LIVE`, so that a signal to the
    sweep reaches it (:func:`run_sweep`)."""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(folder / LOG_FILE, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        # its own session: a Ctrl-C at the terminal reaches the sweep only, which passes it on
        # once; and it ends if the sweep dies (analysis.process.die_with_parent)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**env, PARENT_ENV: str(os.getpid())})
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            proc.wait()
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    wall = time.perf_counter() - t0
    rc = proc.returncode
    message = ""
    lines = (folder / LOG_FILE).read_text(errors="replace").strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    if rc is not None and rc < 0:
        message = f"pid {proc.pid} killed by {signal.Signals(-rc).name}"
    elif rc != 0:
        message = f"pid {proc.pid} exit {rc}: " + (errors[-1] if errors else (lines[-1] if lines else ""))
    status = ("done" if rc == 0 else "nonfinite" if rc == EXIT_NON_FINITE else
              "interrupted" if rc in (130, 143) else "failed")
    if status == "done" and not (folder / SUMMARY).is_file():
        status, message = "failed", "exit status 0 but no summary.json"
    return RunOutcome(status, rc, wall, message)


Launcher = Callable[[list[str], Path, dict[str, str]], RunOutcome]


class SweepStopped(Exception):
    """SIGINT / SIGTERM reached the sweep: it passed the signal on once to each run under way and
    started nothing new. ``ended``: folder -> status of this invocation's runs; the message says
    which runs checkpointed (``interrupted``) and which did not."""

    def __init__(self, signum: int, ended: dict[str, str]) -> None:
        self.signum, self.ended = signum, ended
        stopped = sorted(f for f, st in ended.items() if st == "interrupted")
        other = sorted(f for f, st in ended.items() if st in ("failed", "nonfinite"))
        text = (f"{signal.Signals(signum).name}: {len(stopped)} run(s) under way checkpointed"
                + (f"; {len(other)} ended otherwise ({', '.join(other)}: see their {LOG_FILE})"
                   if other else "") + "; rerun the same command to resume")
        super().__init__(text)


def _record(folder: Path, run: PlannedRun, outcome: RunOutcome, cmd: list[str]) -> None:
    """``sweep_status.json`` of the attempt; a finished run's snapshots also go into its
    committable :data:`analysis.runs.COMPACT_SNAPSHOTS`."""
    if outcome.status == "done" and (folder / SPECTRA_DIR).is_dir():
        write_compact_snapshots(folder)
    write_json_atomic(folder / STATUS_FILE, {
        **asdict(outcome), "command": cmd, "setting": run.setting, "seed": run.seed,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S")})


def write_manifest(out: Path, spec: SweepSpec, plan: list[PlannedRun]) -> Path:
    """``out/sweep.json``: the sweep (tables, settings and their folders, seeds) for
    :mod:`realnet.sweeps.tables`."""
    folders: dict[tuple[str, int], list[str]] = {}
    for run in plan:
        for use in run.uses:
            folders.setdefault(use, []).append(run.folder)
    manifest = {
        "name": spec.name,
        "description": spec.description,
        "base": spec.base,
        "seeds": list(spec.seeds),
        "overrides": list(spec.overrides),
        "tables": [{
            "name": t.name, "title": t.title, "rows": t.rows, "cols": t.cols, "note": t.note,
            "settings": [{"label": s.label, "overrides": list(s.overrides), "paper": s.paper,
                          "runs": sorted(folders.get((t.name, i), []))}
                         for i, s in enumerate(t.settings)],
        } for t in spec.tables],
    }
    return write_json_atomic(out / MANIFEST, manifest)


def _describe(run: PlannedRun, outcome: RunOutcome, folder: Path) -> str:
    text = f"{run.setting} seed{run.seed}: {outcome.status} ({outcome.wall_s:.0f} s)"
    if outcome.status == "done":
        s = read_json(folder / SUMMARY) or {}
        parts = [f"{k} {s[k]:.2f}" for k in ("linear_top1", "knn_top1", "effective_rank")
                 if isinstance(s.get(k), (int, float))]
        if s.get("collapsed"):
            parts.append("collapsed")
        text += " " + ", ".join(parts)
    elif outcome.message:
        text += f" {outcome.message}"
    return text


def run_sweep(spec: SweepSpec, out: str | Path, *, jobs: int = 1, dry_run: bool = False,
              retry_failed: bool = False, launcher: Launcher = launch_subprocess,
              rerun_without_spectra: bool = False,
              quiet: bool = False, aggregate: bool = True,
              tables: Sequence[str] | None = None, nproc: int = 1,
              slurm: Sequence[str] | None = None, submitit: str | None = None) -> dict[str, str]:
    """Plan, launch what is not finished, and aggregate. Returns {run folder: final state}.

    ``tables``: launch only the runs that these tables use (a sweep run in parts; the manifest
    and the aggregated tables still cover every table, unfinished cells marked as such).

    ``launcher(cmd, folder, env)`` runs one command (replaceable for tests). A failing run is
    recorded (``sweep_status.json``) and the sweep goes on. ``dry_run`` prints the plan and
    touches nothing.

    ``rerun_without_spectra``: also run again the finished runs that have neither ``spectra/``
    nor ``snapshots.npz`` (runs committed before the compact snapshots were kept).
    ``nproc > 1``: every run under ``torchrun`` with that many processes (data-parallel).
    ``slurm`` (a list of ``#SBATCH`` options, possibly empty): write one batch script per run to
    launch and ``submit_all.sh`` (:mod:`realnet.sweeps.launchers`) instead of running anything.
    ``submitit`` (a cluster name for submitit's ``AutoExecutor``, ``"auto"`` to let it choose):
    submit the runs as one job array through submitit instead (:mod:`realnet.sweeps.submitit_backend`;
    ``slurm`` then holds the ``--key=value`` options)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs={jobs!r} is invalid: allowed an integer >= 1")
    realnet_command(spec.base, Path("."), (), nproc=nproc)  # nproc checked before any work
    out = Path(out)
    plan = plan_runs(spec)
    n_cells = sum(len(t.settings) for t in spec.tables) * len(spec.seeds)
    states = {r.folder: run_state(out / r.folder, r.config) for r in plan}
    todo = [r for r in plan if states[r.folder] in ("new", "partial", "failed") or
            (retry_failed and states[r.folder] == "nonfinite") or
            (rerun_without_spectra and states[r.folder] == "done"
             and not (out / r.folder / SPECTRA_DIR).is_dir()
             and not (out / r.folder / COMPACT_SNAPSHOTS).is_file())]
    if tables is not None:
        unknown = sorted(set(tables) - {t.name for t in spec.tables})
        if unknown:
            raise ConfigError(f"--tables: unknown table(s) {', '.join(unknown)} (the sweep has "
                             f"{', '.join(t.name for t in spec.tables)})")
        todo = [r for r in todo if any(name in tables for name, _ in r.uses)]
    todo.sort(key=lambda r: spec.seeds.index(r.seed))  # every setting's first seed first
    say = (lambda *a, **k: None) if quiet else print
    counts = {s: sum(v == s for v in states.values()) for s in sorted(set(states.values()))}
    say(f"sweep {spec.name!r}: {n_cells} table cells x seeds -> {len(plan)} distinct runs "
        f"({', '.join(f'{v} {k}' for k, v in counts.items())}); {len(todo)} to run"
        + (f", {jobs} at a time" if jobs > 1 else ""))
    conflicts = [r.folder for r in plan if states[r.folder] == "conflict"]
    if dry_run:
        for r in plan:
            say(f"  [{states[r.folder]:>9}] {r.folder}  {' '.join(r.overrides)}")
        return states
    if conflicts:  # nothing is launched and no table is rewritten from a mix of configs
        raise ConfigError(f"{str(out)!r} holds runs of another config than the sweep file's: "
                         f"{', '.join(conflicts)}; use a new --out (or restore the sweep file)")
    root = Path(__file__).resolve().parents[2]
    commands = [(r.folder, realnet_command(spec.base, out / r.folder, r.overrides, nproc=nproc))
                for r in todo]
    if submitit is not None:
        from realnet.sweeps.submitit_backend import SUBMITIT_DIR, submit_runs

        write_manifest(out, spec, plan)
        jobs = submit_runs(out, spec.name, commands, root=root, options=slurm or (),
                           cluster=None if submitit == "auto" else submitit)
        say(f"{len(jobs)} job(s) submitted through submitit; ids in {out / SUBMITIT_DIR / 'jobs.json'}, "
            "logs beside them; afterwards the same sweep command (or python -m realnet.sweeps.tables) "
            "writes the tables")
        return states
    if slurm is not None:
        write_manifest(out, spec, plan)
        paths = write_slurm_scripts(out, spec.name, commands, root=root, options=slurm)
        say(f"{len(todo)} batch script(s) and {paths[-1]}: submit with `bash {paths[-1]}`; "
            "afterwards the same sweep command (or python -m realnet.sweeps.tables) writes the tables")
        return states
    # SIGINT/SIGTERM: passed on to the running children, and no further run starts
    with folder_lock(out, "sweep folder"), StopSignals(_forward_to_children) as signals:
        return _launch(spec, out, plan, todo, states, jobs, launcher, say, aggregate, signals, nproc)


def _forward_to_children(signum: int) -> None:
    """Pass a signal on to every live child (each checkpoints its step and exits)."""
    with _LIVE_LOCK:
        for proc in list(_LIVE):
            if proc.poll() is None:
                proc.send_signal(signum)


def _launch(spec: SweepSpec, out: Path, plan: list[PlannedRun], todo: list[PlannedRun],
            states: dict[str, str], jobs: int, launcher: Launcher, say: Callable[..., None],
            aggregate: bool, signals: StopSignals, nproc: int = 1) -> dict[str, str]:
    write_manifest(out, spec, plan)
    env = _child_env(jobs)
    t0 = time.perf_counter()
    done_count = 0
    ended: dict[str, str] = {}  # folder -> status, the runs of this invocation

    def one(run: PlannedRun) -> tuple[PlannedRun, RunOutcome]:
        folder = out / run.folder
        cmd = realnet_command(spec.base, folder, run.overrides, nproc=nproc)
        if signals.signum is not None:  # stopping: start nothing new
            return run, RunOutcome("skipped", None, 0.0, "the sweep was stopped by a signal")
        try:
            outcome = launcher(cmd, folder, env)
        except OSError as e:  # could not start the process at all
            outcome = RunOutcome("failed", None, 0.0, f"{type(e).__name__}: {e}")
        _record(folder, run, outcome, cmd)
        return run, outcome

    def report(run: PlannedRun, outcome: RunOutcome) -> None:
        nonlocal done_count
        if outcome.status == "skipped":
            return
        done_count += 1
        states[run.folder] = ended[run.folder] = outcome.status
        elapsed = time.perf_counter() - t0
        eta = elapsed / done_count * (len(todo) - done_count)
        say(f"[{done_count}/{len(todo)} {elapsed / 60:.1f} min, eta {eta / 60:.1f} min] "
            f"{_describe(run, outcome, out / run.folder)}", flush=True)

    if jobs == 1:
        for run in todo:
            report(*one(run))
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for fut in as_completed([pool.submit(one, r) for r in todo]):
                report(*fut.result())
    if signals.signum is not None:
        raise SweepStopped(signals.signum, ended)
    failed = [f for f, s in states.items() if s in ("failed", "conflict")]
    if failed:
        say(f"{len(failed)} run(s) failed (see <run>/{LOG_FILE}): {', '.join(failed)}")
    if aggregate:
        from realnet.sweeps.tables import write_tables

        paths = write_tables(out)
        say(f"tables: {', '.join(str(p) for p in paths)}")
    return states


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realnet.sweeps",
                                description=doc_summary(__doc__))
    p.add_argument("sweep", help="sweep file (TOML)")
    p.add_argument("--out", required=True, help="output folder of the sweep")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; run nothing")
    p.add_argument("--retry-failed", action="store_true",
                   help="also rerun runs that stopped on NaN/inf")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--tables", default=None, metavar="NAME[,NAME]",
                   help="launch only the runs of these tables (the others stay as they are)")
    p.add_argument("--rerun-without-spectra", action="store_true",
                   help="also rerun finished runs with neither spectra/ nor snapshots.npz (runs "
                        "committed before the compact snapshots were kept)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for every run (repeatable), after the sweep file's own")
    p.add_argument("--nproc", type=int, default=1,
                   help="run each run under torchrun with this many processes (data-parallel)")
    p.add_argument("--slurm", action="store_true",
                   help="write a SLURM batch script per unfinished run and slurm/submit_all.sh "
                        "instead of running them")
    p.add_argument("--slurm-option", action="append", default=[], metavar="OPTION",
                   help="an #SBATCH option for the scripts, e.g. --gres=gpu:1 (repeatable)")
    p.add_argument("--submitit", nargs="?", const="auto", default=None, metavar="CLUSTER",
                   help="submit the unfinished runs as one job array through submitit (pip install "
                        "'ssl-dynamics[submitit]'; requeued on pre-emption, logs in DIR/submitit/); "
                        "CLUSTER: slurm, local or auto (default)")
    args = p.parse_args(argv)

    try:
        spec = load_sweep(args.sweep)
        for item in args.set:
            if "=" not in item or item.split("=", 1)[0].strip() in ("", "seed"):
                raise ConfigError(f"--set {item!r} is invalid: allowed KEY=VALUE with a realnet "
                                 "config key other than seed (the sweep sets the seeds)")
        spec = dataclasses.replace(spec, overrides=spec.overrides + tuple(args.set))
        states = run_sweep(spec, args.out, jobs=args.jobs, dry_run=args.dry_run,
                           retry_failed=args.retry_failed, quiet=args.quiet,
                           rerun_without_spectra=args.rerun_without_spectra,
                           tables=None if args.tables is None else args.tables.split(","),
                           nproc=args.nproc,
                           slurm=args.slurm_option if (args.slurm or args.submitit) else None,
                           submitit=args.submitit)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FolderBusyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 5
    except SweepStopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 128 + e.signum
    return 1 if any(s in ("failed", "conflict") for s in states.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
