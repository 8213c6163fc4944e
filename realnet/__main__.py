"""Command line: ``python -m realnet train|eval|export|configs|print-config``.

``python -m realnet train --config NAME_OR_FILE [key=value ...] [--out DIR] [--quiet]``
    Train (or resume, when DIR holds a checkpoint of the same config) and write the run folder
    (see :mod:`realnet.training.trainer`; DIR defaults to ``runs/<config name>``). ``--config`` is a TOML path or the name of a shipped config
    (``python -m realnet configs`` lists them). ``--stop-after N`` stops after N steps of this
    invocation with a checkpoint (rerun the same command to continue).
``python -m realnet eval DIR``
    Re-probe the run's last checkpoint; writes DIR/eval.json.
``python -m realnet export DIR [--out FILE] [--force]``
    Write the trained trunk as a plain state dict (:mod:`realnet.eval.export`); never inside a run
    folder except as its ``trunk.pt``, and never over an existing file without ``--force``.
``python -m realnet print-config --config NAME_OR_FILE [key=value ...]``
    Print the resolved config (inheritance and overrides applied, validated) as TOML.

Exit status: 0 done (or stopped by ``--stop-after``), 2 invalid configuration or arguments,
3 NaN/inf or another numerical failure during training (the last good checkpoint is kept), 4
dataset not found or its download failed, 5 the run
folder is being written by another process, 130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM after
checkpointing the step under way (rerun to resume).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

EXIT_BAD_CONFIG, EXIT_NON_FINITE, EXIT_NO_DATA, EXIT_BUSY = 2, 3, 4, 5

_SUMMARY_KEYS = ("knn_top1", "linear_top1", "linear_top1_random_init", "effective_rank",
                 "collapsed", "steps", "wall_time_s", "images_per_s")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m realnet",
        description="Train, evaluate and export real BYOL / SimSiam / DirectPred runs. Under "
                    "torchrun (torchrun --nproc_per_node N -m realnet train ...) a run is "
                    "data-parallel over N processes.",
        epilog="Exit status: 0 done, 2 bad config or arguments, 3 NaN/inf, 4 dataset missing, "
               "5 run folder busy, 130/143 stopped by a signal after a checkpoint.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train or resume a run")
    t.add_argument("--config", required=True, help="TOML file or shipped config name")
    t.add_argument("--out", default=None,
                   help="run folder (created; resumed if it holds a run); default runs/<config>")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop after N steps of this invocation (a checkpoint is written)")
    t.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. optim.lr=0.05 predictor.name=linear")
    e = sub.add_parser("eval", help="re-probe a run's last (or a kept) checkpoint; writes "
                       "eval.json (eval_step_N.json with --step)")
    e.add_argument("run_dir")
    e.add_argument("--device", default=None, help="override the run's device (cpu, cuda, ...)")
    e.add_argument("--step", type=int, default=None, metavar="N",
                   help="the checkpoint of step N (kept with log.keep_checkpoints)")
    e.add_argument("overrides", nargs="*", metavar="eval.key=value",
                   help="evaluation keys only, e.g. eval.probe_epochs=200 eval.knn_k=20")
    x = sub.add_parser("export", help="write a run's trained trunk as a plain state dict (+ .json)")
    x.add_argument("run_dir")
    x.add_argument("--out", default=None, help="file (default RUN_DIR/trunk.pt; inside a run "
                   "folder only trunk.pt)")
    x.add_argument("--force", action="store_true", help="replace --out (and its .json) if it exists")
    x.add_argument("--step", type=int, default=None, metavar="N",
                   help="the checkpoint of step N (kept with log.keep_checkpoints)")
    sub.add_parser("configs", help="list the shipped configs")
    c = sub.add_parser("print-config", help="print the resolved config (base, inheritance, overrides) as TOML")
    c.add_argument("--config", required=True, help="TOML file or shipped config name")
    c.add_argument("overrides", nargs="*", metavar="key=value")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after the options (argparse takes only the first run)
    takes = hasattr(args, "overrides")
    overrides = [a for a in extra if takes and re.match(r"^[A-Za-z_][\w.]*=", a)]
    unknown = [a for a in extra if a not in overrides]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    from analysis.process import die_with_parent

    die_with_parent()  # launched by a sweep: end with it
    if args.command == "configs":
        from .config.train_config import config_description, shipped_configs

        names = shipped_configs()
        width = max(map(len, names))
        print("\n".join(f"{n:<{width}}  {config_description(n)}" for n in names))
        return 0
    from analysis.process import SignalStop, signals_raise
    from realnet.training.progress import current_phase

    try:
        with signals_raise(where=current_phase):
            return _command(args)
    except SignalStop as e:  # outside the steps: loading data, a snapshot, the final evaluation
        print(f"stopped: {e} during {e.where or args.command}; nothing is lost (the last "
              "checkpoint is kept); rerun the same command to continue", file=sys.stderr)
        return 128 + e.signum


def _command(args: argparse.Namespace) -> int:
    """The chosen command; a user's error ends in one line and its exit code. Imported here so
    that --help is instant."""
    from realnet.config.train_config import load_config
    from realnet.eval.evaluate import evaluate_run
    from realnet.training.trainer import train
    from analysis.errors import ConfigError, io_problem
    from analysis.runs import FolderBusyError
    from realnet.data.datasets import DownloadError, MissingDatasetError
    from realnet.training.failures import Interrupted, NonFiniteError

    try:
        if args.command == "print-config":
            from realnet.config.train_config import config_to_toml

            print(config_to_toml(load_config(args.config, args.overrides)), end="")
        elif args.command == "train":
            if args.stop_after is not None and args.stop_after < 1:
                raise ConfigError(f"--stop-after={args.stop_after} is invalid: allowed an "
                                 "integer >= 1")
            cfg = load_config(args.config, args.overrides)
            out = args.out or str(Path("runs") / Path(args.config).name.removesuffix(".toml"))
            summary = train(cfg, out, quiet=True if args.quiet else None,
                            stop_after=args.stop_after)
            if summary is None and args.stop_after is not None:
                print(f"stopped after {args.stop_after} steps; rerun the same command to resume")
            elif summary is None:  # a torchrun rank other than 0: rank 0 prints the result
                pass
            else:
                print(json.dumps({k: summary[k] for k in _SUMMARY_KEYS if k in summary}))
        elif args.command == "export":
            from realnet.eval.export import export_trunk

            print(json.dumps(export_trunk(args.run_dir, args.out, force=args.force, step=args.step)))
        else:
            res = evaluate_run(args.run_dir, device=args.device, step=args.step,
                               overrides=args.overrides)
            print(json.dumps(res))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NON_FINITE
    except (MissingDatasetError, DownloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NO_DATA
    except FolderBusyError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BUSY
    except Interrupted as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 128 + e.signum
    except OSError as e:  # a full disk or a permission: one line (the last checkpoint is intact)
        line = io_problem(e)
        if line is None:  # any other OSError is a bug: its traceback
            raise
        print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
