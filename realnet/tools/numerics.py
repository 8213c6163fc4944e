"""Same numerics: does the fast path train to where eager fp32 does? (realnet.tools.numerics)

Two paths of the same run (same config, same seeds), each trained by :func:`realnet.training.trainer.train`:

``fast``
    ``train.bf16=auto`` (bf16 autocast on CUDA and on CPUs with native bf16, off elsewhere),
    ``train.channels_last=true``, ``train.compile=true`` (applied on CUDA only).
``plain``
    ``train.bf16=false``, ``train.channels_last=false``, ``train.compile=false``: eager fp32.

On a CPU without native bf16 the two differ only by channels_last, so such a run checks the
machinery, not bf16; on a CPU with AMX or AVX512-BF16 it checks bf16 too.

For each path and seed the final kNN top-1 (trunk features) and the effective rank (RankMe of the
test-set projector outputs) are read from the run's summary. Per metric the verdict compares the
difference of the two paths' means with the seed-to-seed spread: with ``s_p`` the pooled sample
standard deviation over seeds (``sqrt((s_fast^2 + s_plain^2) / 2)``, equal seed counts), the
paths agree when ``|mean_fast - mean_plain| <= 2 s_p``. The standard error of a difference of
two means of ``n`` seeds is ``s_p sqrt(2 / n)`` (0.82 ``s_p`` for n = 3, 1 ``s_p`` for n = 2), so
the rule allows about two standard errors: a bf16 effect smaller than the seed noise passes, an
effect of a few seed standard deviations fails.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from realnet.config.train_config import load_config
from realnet.training.trainer import train
from analysis.errors import ConfigError

__all__ = ["PATHS", "METRICS", "TOLERANCE_SD", "run_paths", "summarise", "agreement",
           "format_report", "main"]

#: Overrides of each path (module docstring).
PATHS: dict[str, tuple[str, ...]] = {
    "fast": ("train.bf16=auto", "train.channels_last=true", "train.compile=true"),
    "plain": ("train.bf16=false", "train.channels_last=false", "train.compile=false"),
}
#: Summary keys compared.
METRICS = ("knn_top1", "effective_rank")
#: Agreement rule: |difference of means| <= TOLERANCE_SD pooled seed standard deviations.
TOLERANCE_SD = 2.0

#: Evaluation settings of the comparison: kNN and effective rank at the end only.
_EVAL = ("eval.linear_probe=false", "eval.random_init_baseline=false", "eval.knn_every=0")


def run_paths(config: str, overrides: Sequence[str], seeds: Sequence[int], out: str | Path, *,
              quiet: bool = True) -> dict[str, dict[int, dict[str, float]]]:
    """Train every (path, seed) into ``out/<path>/seed_<s>`` (resumed if already there) and
    return ``{path: {seed: {metric: value}}}``. Invalid overrides are refused (ValueError) before
    any run starts."""
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={list(seeds)!r} is invalid: allowed at least 2 distinct seeds "
                         "(the verdict needs a seed-to-seed spread)")
    cfgs = {(path, s): load_config(config, [*overrides, *_EVAL, *extra, f"seed={s}"])
            for path, extra in PATHS.items() for s in seeds}
    results: dict[str, dict[int, dict[str, float]]] = {p: {} for p in PATHS}
    for (path, s), cfg in cfgs.items():
        summary = train(cfg, Path(out) / path / f"seed_{s}", quiet=quiet)
        assert summary is not None  # no stop_after: train runs to the end
        results[path][s] = {m: float(summary[m]) for m in METRICS}
    return results


def summarise(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, sample standard deviation)`` (ddof 1) of per-seed values."""
    a = np.asarray(values, dtype=np.float64)
    if a.size < 2:
        raise ConfigError(f"values: need at least 2 seeds, got {a.size}")
    return float(a.mean()), float(a.std(ddof=1))


def agreement(fast: Sequence[float], plain: Sequence[float],
              tolerance_sd: float = TOLERANCE_SD) -> dict[str, Any]:
    """Difference of means against the pooled seed standard deviation (module docstring):
    ``{"diff", "pooled_sd", "ratio", "same"}``; ``ratio = |diff| / pooled_sd`` (inf for a
    non-zero difference with no spread, 0 for identical constant values)."""
    if len(fast) != len(plain):
        raise ConfigError(f"fast, plain: need the same number of seeds, got {len(fast)} and "
                         f"{len(plain)}")
    mf, sf = summarise(fast)
    mp, sp = summarise(plain)
    diff = mf - mp
    pooled = math.sqrt((sf**2 + sp**2) / 2)
    ratio = abs(diff) / pooled if pooled > 0 else (0.0 if diff == 0 else math.inf)
    return {"diff": diff, "pooled_sd": pooled, "ratio": ratio, "same": ratio <= tolerance_sd}


def format_report(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """The per-seed table, mean +- std per path and the verdict per metric."""
    seeds = sorted(next(iter(results.values())))
    lines = [f"{'path':<6} {'seed':>4}  {'kNN top1 %':>10}  {'eff. rank':>9}"]
    for path, per_seed in results.items():
        for s in seeds:
            v = per_seed[s]
            lines.append(f"{path:<6} {s:>4}  {v['knn_top1']:>10.2f}  {v['effective_rank']:>9.2f}")
    lines.append("")
    for path, per_seed in results.items():
        parts = []
        for m in METRICS:
            mean, sd = summarise([per_seed[s][m] for s in seeds])
            parts.append(f"{m} {mean:.2f} +- {sd:.2f}")
        lines.append(f"{path:<6} mean +- std over {len(seeds)} seeds: " + ", ".join(parts))
    lines.append("")
    verdicts = []
    for m in METRICS:
        a = agreement([results["fast"][s][m] for s in seeds],
                      [results["plain"][s][m] for s in seeds])
        verdicts.append(a["same"])
        lines.append(f"{m}: fast - plain = {a['diff']:+.3f}, pooled seed std {a['pooled_sd']:.3f}"
                     f", |diff| / std = {a['ratio']:.2f} -> "
                     f"{'within' if a['same'] else 'OUTSIDE'} the seed spread "
                     f"(rule: <= {TOLERANCE_SD:g})")
    lines.append("verdict: " + ("same numerics (every metric within the seed spread)"
                                if all(verdicts) else "DIFFERENT numerics"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realnet.tools.numerics",
                                description=" ".join(__doc__.strip().split("\n\n")[0].split()).replace("``", ""))
    p.add_argument("--config", default="fmnist_directpred",
                   help="TOML path or shipped config (default fmnist_directpred)")
    p.add_argument("--steps", type=int, default=200, help="optimiser steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tiny", action="store_true",
                   help="smoke size: digits config, width 0.125 (the narrowest that channels_last "
                        "runs: realnet.training.runtime), 10 steps of batch 32, 2 seeds")
    p.add_argument("--out", default=None,
                   help="keep the run folders here (default: a temporary folder, removed)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the per-seed numbers and the verdicts here")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    a = p.parse_args(argv)
    config, overrides, seeds = a.config, list(a.overrides), a.seeds
    steps = a.steps
    if a.tiny:
        config = "digits" if a.config == p.get_default("config") else config
        steps = 10 if a.steps == p.get_default("steps") else steps
        seeds = [0, 1] if a.seeds == p.get_default("seeds") else seeds
        overrides = ["train.batch_size=32", "model.width=0.125", "model.proj_hidden_dim=32",
                     "model.proj_dim=8", "eval.knn_k=10", "data.train_limit=300",
                     "data.test_limit=100", "log.spectra_every=0", "log.checkpoint_every=0",
                     *overrides]
    overrides = [f"train.steps={steps}", *overrides]
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="realnet-numerics-"))
    try:
        results = run_paths(config, overrides, seeds, out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if a.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print(f"config {config} {' '.join(overrides)}; seeds {seeds}")
    print(format_report(results))
    if a.json:
        verdicts = {m: agreement([results["fast"][s][m] for s in seeds],
                                 [results["plain"][s][m] for s in seeds]) for m in METRICS}
        Path(a.json).write_text(json.dumps({"config": config, "overrides": overrides,
                                            "seeds": list(seeds), "results": results,
                                            "agreement": verdicts}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
