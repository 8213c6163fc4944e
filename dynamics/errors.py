"""What the user got wrong: :class:`ConfigError` (defined at the bottom layer so that every
package raises the same class; :mod:`analysis.errors` re-exports it with the reporting rule)."""
from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """What the user got wrong (a config value, a command-line argument, a run folder, sweep
    file or data file that is not what it should be); the message is the whole report: one
    line naming the key, the argument or the path, and what is allowed. Command lines print it
    and exit 2; any other exception is a bug and shows its traceback."""
