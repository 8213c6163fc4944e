"""Plain-JSON conversion shared by every writer of results (:func:`json_ready`) and the output
folder check (:func:`ensure_writable`), defined with the theory at the bottom of the import layers
(:mod:`dynamics.jsonio`)."""
from __future__ import annotations

from dynamics.jsonio import ensure_writable, json_ready

__all__ = ["json_ready", "ensure_writable"]
