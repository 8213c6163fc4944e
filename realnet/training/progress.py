"""Progress display of the training loop: a bar on a terminal, plain lines in a log file (nohup,
SLURM), or nothing (:func:`progress_mode`)."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any, Iterator

__all__ = ["progress_mode", "PlainProgress", "make_progress", "phase", "current_phase"]

#: The phases under way, innermost last (what a signal outside the training steps interrupted).
_PHASES: list[str] = []


def current_phase() -> str | None:
    """The innermost :func:`phase` under way, or None between phases."""
    return _PHASES[-1] if _PHASES else None


def progress_mode(quiet: bool | None) -> str:
    """``"bar"`` (a terminal), ``"lines"`` (stderr is a file or pipe: nohup, SLURM), or
    ``"off"`` (``quiet``, or the ``CI`` environment variable set)."""
    if quiet:
        return "off"
    if quiet is None and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return "off"
    return "bar" if sys.stderr.isatty() else "lines"


class PlainProgress:
    """Progress as plain lines on stderr for logs (no terminal): the first step, then at most one
    line every ``every_s`` seconds, and the last step; each names the step, the rate and the
    latest logged metrics. The interface of the tqdm bar the loop drives."""

    def __init__(self, total: int, initial: int, every_s: float = 30.0) -> None:
        self.total, self.n, self.every_s = total, initial, every_s
        self.t0 = self.t_last = time.perf_counter()
        self.n0, self.postfix = initial, {}
        self._printed_first = False

    def set_postfix(self, values: dict[str, Any], refresh: bool = False) -> None:
        self.postfix = dict(values)

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        if self._printed_first and now - self.t_last < self.every_s and self.n < self.total:
            return
        self._printed_first, self.t_last = True, now
        rate = (self.n - self.n0) / max(now - self.t0, 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        print(f"train step {self.n}/{self.total} ({100 * self.n / self.total:.0f}%) {rate:.2f} step/s "
              f"eta {eta / 60:.1f} min {extra}".rstrip(), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def make_progress(total: int, initial: int, mode: str):
    """The loop's progress display (:func:`progress_mode`)."""
    if mode == "lines":
        return PlainProgress(total, initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=mode == "off", unit="step", dynamic_ncols=True,
                desc="train")


@contextlib.contextmanager
def phase(label: str, mode: str, every_s: float = 30.0) -> Iterator[None]:
    """Show a phase without steps (loading data, a snapshot, the final evaluation, an export):
    a line when it starts, one every ``every_s`` seconds while it lasts, and one with its time
    when it ends; nothing when ``mode`` is ``"off"`` (:func:`progress_mode`). The label is
    :func:`current_phase` while the phase lasts, in every mode."""
    _PHASES.append(label)
    try:
        with _shown(label, mode, every_s):
            yield
    finally:
        _PHASES.pop()


@contextlib.contextmanager
def _shown(label: str, mode: str, every_s: float) -> Iterator[None]:
    if mode == "off":
        yield
        return
    t0 = time.perf_counter()
    print(f"{label} ...", file=sys.stderr, flush=True)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            print(f"  {label}: {time.perf_counter() - t0:.0f} s so far", file=sys.stderr, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        print(f"{label}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

