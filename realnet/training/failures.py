"""How a run stops early: :class:`Interrupted` (SIGINT / SIGTERM after the step under way was
checkpointed; exit 130 / 143) and :class:`NonFiniteError` (NaN/inf, or any numerical failure of
:data:`NUMERICAL_FAILURES`, at a step; exit 3, the last good checkpoint kept)."""
from __future__ import annotations

import contextlib
import signal

import numpy as np
import torch

__all__ = ["Interrupted", "NonFiniteError", "NUMERICAL_FAILURES", "numerical_failure_is_divergence"]


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: the step under way was completed and checkpointed."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum
        name = signal.Signals(signum).name
        super().__init__(f"{name} at step {step}: checkpoint written; rerun the same command to resume")


class NonFiniteError(FloatingPointError):
    """The loss or the weights became NaN/inf at ``step`` (1-based optimiser step)."""

    def __init__(self, step: int, what: str) -> None:
        self.step, self.what = step, what
        super().__init__(f"non-finite {what} at step {step}; the run stopped and its last good "
                         f"checkpoint (if any) is kept. Lower optim.lr or check the data.")


#: Numerical failures anywhere in a run (an eigendecomposition of a non-finite F, an overflow):
#: each is a divergence, exit 3 with the last good checkpoint kept, never a "bad config".
NUMERICAL_FAILURES = (FloatingPointError, OverflowError, torch.linalg.LinAlgError,
                      np.linalg.LinAlgError)


@contextlib.contextmanager
def numerical_failure_is_divergence(step: int):
    """Re-raise a :data:`NUMERICAL_FAILURES` error of the block as :class:`NonFiniteError`."""
    try:
        yield
    except NonFiniteError:
        raise
    except NUMERICAL_FAILURES as e:
        raise NonFiniteError(step, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
