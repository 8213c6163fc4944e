"""Reading a real run folder (the trainer's output) as plain data; the trainer need not be alive
or importable.

Folder layout (written by the real-network trainer)::

    config.json      resolved config (nested dict; ``seed`` at top level)
    metrics.jsonl    one JSON object per logged step (``step``, ``lr``, ``loss``, ...; a last
                     line with ``"final": true``)
    spectra.jsonl    one summary line per spectra snapshot
    spectra/step_XXXXXXX.npz   snapshot arrays: ``F``, ``F_eigvals`` (descending), ``C_same``,
                     ``C_cross``, ``same_on_F``, ``cross_on_F``, ``effective_rank``, and with a
                     linear predictor ``Wp``, ``alignment``, ...
    summary.json     final evaluation (``linear_top1``, ``knn_top1``, ``collapsed``, ...)
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Run", "load_run", "read_jsonl", "read_snapshot_file", "snapshot_path", "config_without",
           "SNAPSHOT_RE"]

SNAPSHOT_RE = re.compile(r"^step_(\d+)\.npz$")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (a torn last line is skipped); [] if absent."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def snapshot_path(folder: str | Path, step: int) -> Path:
    """Where a run folder keeps the spectra snapshot of ``step``: ``spectra/step_0000500.npz``."""
    return Path(folder) / "spectra" / f"step_{int(step):07d}.npz"


def read_snapshot_file(path: str | Path) -> dict[str, Any]:
    """A snapshot ``.npz`` as a dict (0-d arrays become Python scalars)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


@dataclass
class Run:
    """A run folder loaded as data (snapshots are read on demand)."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    spectra_lines: list[dict[str, Any]]
    summary: dict[str, Any] | None
    snapshot_steps: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    def snapshot(self, step: int) -> dict[str, Any]:
        if step not in self.snapshot_steps:
            raise ValueError(f"step: no snapshot at step {step} in {self.path} (have "
                             f"{self.snapshot_steps[:5]}{'...' if len(self.snapshot_steps) > 5 else ''})")
        return read_snapshot_file(snapshot_path(self.path, step))

    def snapshots(self) -> list[dict[str, Any]]:
        return [self.snapshot(s) for s in self.snapshot_steps]

    def final_snapshot(self) -> dict[str, Any]:
        if not self.snapshot_steps:
            raise ValueError(f"{self.path}: no spectra snapshots (spectra/step_*.npz)")
        return self.snapshot(self.snapshot_steps[-1])

    def lr_log(self) -> tuple[list[int], list[float]] | None:
        """``(steps, lr)`` of the metrics lines that carry an ``lr``, or None."""
        pts = [(int(m["step"]), float(m["lr"])) for m in self.metrics
               if "lr" in m and "step" in m and not m.get("final", False)]
        if not pts:
            return None
        steps, lrs = zip(*sorted(set(pts)))
        return list(steps), list(lrs)


def load_run(path: str | Path) -> Run:
    """Load a run folder; ValueError naming the folder when it has no ``config.json``."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ValueError(f"run_dir: {str(path)!r} has no config.json; not a run folder")
    config = json.loads(cfg_path.read_text())
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    steps = []
    spec_dir = path / "spectra"
    if spec_dir.is_dir():
        for f in spec_dir.iterdir():
            m = SNAPSHOT_RE.match(f.name)
            if m:
                steps.append(int(m.group(1)))
    return Run(path, config, read_jsonl(path / "metrics.jsonl"),
               read_jsonl(path / "spectra.jsonl"), summary, sorted(steps))


def config_without(config: dict[str, Any], drop: tuple[str, ...] = ("seed",)) -> dict[str, Any]:
    """A copy of a nested config without the dotted keys in ``drop`` (for grouping runs that
    differ only by seed)."""
    out = json.loads(json.dumps(config))
    for key in drop:
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return out
