"""The project's errors that are the user's doing, and how a command line reports any error.

:class:`ConfigError`: what the user got wrong (a config value, a command-line argument, a run
folder, sweep file or data file that is not what it should be). Every command line prints its
one line and exits 2. A disk or permission problem (:func:`io_problem`) is also one line naming
the path, exit 2. Anything else is a bug: it is not caught, so it shows its traceback (and a
training run keeps its last checkpoint).
"""
from __future__ import annotations

import errno

from dynamics.errors import ConfigError

__all__ = ["ConfigError", "io_problem", "IO_ERRNOS"]


#: errno values of disk and permission problems: reported in one line, never a traceback.
IO_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                       errno.EIO, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                       errno.ENAMETOOLONG})


def io_problem(err: BaseException) -> str | None:
    """The one line for an OSError that is a disk or permission problem (naming its path), None
    for any other exception (a bug: let it show its traceback)."""
    if not isinstance(err, OSError) or err.errno not in IO_ERRNOS:
        return None
    path = err.filename if err.filename is not None else ""
    return f"cannot use {str(path)!r}: {err.strerror or err}" if path else f"{err.strerror or err}"
