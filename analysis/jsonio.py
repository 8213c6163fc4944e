"""Plain-JSON conversion shared by every writer of results: :func:`json_ready`, defined with the
theory at the bottom of the import layers (:mod:`dynamics.jsonio`)."""
from __future__ import annotations

from dynamics.jsonio import json_ready

__all__ = ["json_ready"]
