"""The training clock of a run (:class:`Clock`)."""
from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["Clock"]


class Clock:
    """Training time of the loop: its wall time minus the time spent in monitors (kNN, spectra,
    checkpoints); the same per logging window for the images/s of a metrics line."""

    def __init__(self, train_time_before: float) -> None:
        self.train_time_before = train_time_before
        self.monitor = self.window_monitor = 0.0
        self.t_loop = self.t_window = time.perf_counter()

    def training_time(self) -> float:
        return self.train_time_before + (time.perf_counter() - self.t_loop) - self.monitor

    def monitored(self, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.monitor += time.perf_counter() - t
            self.window_monitor += time.perf_counter() - t

    def close_window(self) -> float:
        """Seconds of training in the window since the last call; starts a new window."""
        dt = time.perf_counter() - self.t_window - self.window_monitor
        self.t_window, self.window_monitor = time.perf_counter(), 0.0
        return dt
