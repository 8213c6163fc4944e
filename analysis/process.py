"""Process control shared by the trainer (:mod:`realnet.training.trainer`) and the sweep runner
(:mod:`realnet.sweeps`): catching SIGINT / SIGTERM so that work under way can end cleanly."""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable

__all__ = ["StopSignals"]


class StopSignals:
    """While active (main thread only; elsewhere nothing is caught), SIGINT and SIGTERM set
    ``signum`` and call ``on_signal(signum)`` instead of ending the process, so the caller can
    finish what it is doing (a training step and its checkpoint; a sweep's running children). With
    ``once``, the first signal restores the previous handlers, so a second Ctrl-C acts at once."""

    def __init__(self, on_signal: Callable[[int], None] | None = None, *, once: bool = False) -> None:
        self.signum: int | None = None
        self._on_signal, self._once = on_signal, once
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        if self._once:
            for sig, old in self._old.items():
                signal.signal(sig, old)
        if self._on_signal is not None:
            self._on_signal(signum)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
