"""Process control shared by the trainer (:mod:`realnet.training.trainer`) and the sweep runner
(:mod:`realnet.sweeps`): catching SIGINT / SIGTERM so that work under way can end cleanly."""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable

__all__ = ["StopSignals", "SignalStop", "signals_raise", "PARENT_ENV", "die_with_parent"]

#: Set by a launcher (the sweep runner) to its own pid: the child ends when that process dies.
PARENT_ENV = "REALNET_PARENT_PID"


def die_with_parent() -> None:
    """When :data:`PARENT_ENV` names this process's parent, ask Linux to send SIGTERM to this
    process when the parent dies (``prctl(PR_SET_PDEATHSIG)``; the trainer then checkpoints the
    step under way and exits 143), so that a killed sweep runner leaves no orphan training on.
    If the parent is already gone, exit at once. Elsewhere (not Linux, no such variable) nothing
    happens."""
    import ctypes
    import os
    import sys

    want = os.environ.get(PARENT_ENV, "")
    if not want.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(want):  # the launcher died before the prctl took effect
        print(f"stopped: the launcher (pid {want}) is gone", file=sys.stderr)
        sys.exit(128 + int(signal.SIGTERM))


class _SignalHandlers:
    """A context that installs ``self._handle`` for SIGINT and SIGTERM while active (main thread
    only; elsewhere nothing is caught) and gives the previous handlers back when it ends."""

    _old: dict[int, Any]

    def _handle(self, signum: int, frame: Any) -> None:  # overridden
        raise NotImplementedError

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class StopSignals(_SignalHandlers):
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


class SignalStop(Exception):
    """SIGINT or SIGTERM arrived outside the steps that :class:`StopSignals` guards (loading data,
    a snapshot, an evaluation, an export): nothing was under way that a rerun cannot redo."""

    def __init__(self, signum: int, where: str | None = None) -> None:
        self.signum, self.where = signum, where
        super().__init__(signal.Signals(signum).name)


class signals_raise(_SignalHandlers):
    """While active (main thread only), SIGINT and SIGTERM raise :class:`SignalStop` wherever the
    program is, so that a command ends in one line and exit code ``128 + signum`` instead of a
    ``KeyboardInterrupt`` traceback (SIGINT) or a silent death (SIGTERM). A :class:`StopSignals`
    inside it takes over while it is active and gives the handlers back when it ends. ``where``
    names, when the signal arrives, what was under way (the exception's ``where``)."""

    def __init__(self, where: Callable[[], str | None] = lambda: None) -> None:
        self._old: dict[int, Any] = {}
        self._where = where

    def _handle(self, signum: int, frame: Any) -> None:
        raise SignalStop(signum, self._where())
