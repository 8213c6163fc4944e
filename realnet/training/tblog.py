"""Optional TensorBoard logging of a run (``log.tensorboard=true``; ``pip install
'ssl-dynamics[tensorboard]'``).

Every ``metrics.jsonl`` line but the final one goes to ``<run>/tensorboard/`` as scalars under
``train/`` (loss, lr, EMA momentum, images/s, kNN top-1, the probe pairs' effective rank ...),
each spectra snapshot adds the
eigenvalues of ``F`` as a histogram and its effective rank, and the final summary adds the probe
results under ``final/``. A resumed run purges the events logged after its checkpoint, so the
curves equal an uninterrupted run's."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from analysis.errors import ConfigError

__all__ = ["TensorBoardLog", "TENSORBOARD_DIR", "tensorboard_writer_class"]

TENSORBOARD_DIR = "tensorboard"


def tensorboard_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``; a clear error when the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("log.tensorboard=true is invalid here: allowed only with the tensorboard "
                         "package installed (pip install 'ssl-dynamics[tensorboard]')") from None
    return SummaryWriter


def _scalars(d: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))}


class TensorBoardLog:
    """Writes a run's metrics lines, spectra snapshots and summary as TensorBoard events."""

    def __init__(self, out: Path, purge_step: int | None = None) -> None:
        writer = tensorboard_writer_class()
        self.writer = writer(log_dir=str(Path(out) / TENSORBOARD_DIR), purge_step=purge_step)

    def metrics(self, line: dict[str, Any]) -> None:
        """A ``metrics.jsonl`` line under ``train/``; the final line's test-set numbers go under
        ``final/`` with the summary (:meth:`summary`), not as a last point of a training curve."""
        if line.get("final"):
            return
        step = int(line["step"])
        for k, v in _scalars(line, skip=("step",)).items():
            self.writer.add_scalar(f"train/{k}", v, step)

    def spectra(self, snap: dict[str, Any], line: dict[str, Any]) -> None:
        """A snapshot (:func:`realnet.eval.spectra.snapshot`) and its summary line."""
        step = int(snap["step"])
        eig = np.asarray(snap["F_eigvals"], dtype=float)
        self.writer.add_histogram("spectra/log10_F_eigvals", np.log10(np.maximum(eig, 1e-12)), step)
        for k, v in _scalars(line, skip=("step",)).items():
            self.writer.add_scalar(f"spectra/{k}", v, step)

    def summary(self, summary: dict[str, Any], step: int) -> None:
        for k, v in _scalars(summary, skip=("steps",)).items():
            self.writer.add_scalar(f"final/{k}", v, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
