"""When a run started to collapse, and which modes went first (from its spectra snapshots).

Per snapshot ``k`` (in step order):

- ``n_surviving[k]``: modes with ``s_j > tol * s_max`` (:func:`analysis.metrics.collapsed_mask`,
  the shared rule) -- 0 when the whole spectrum has collapsed, ``s_max <= tol * s_max[0]``;
- ``effective_rank[k]``: RankMe of the probe outputs (as logged), or of the spectrum of ``F``
  when the snapshot lacks it.

Onset rule: the first snapshot ``k >= 1`` where ``n_surviving[k] <= max_{i<k} n_surviving[i] -
m`` with ``m = max(1, ceil(mode_drop * d))`` (default 10% of the ``d`` modes, so one mode hovering at
the threshold does not count), or ``effective_rank[k] < rank_drop * max_{i<k} effective_rank[i]``.

Which modes went first: the eigenvectors ``u_i`` of ``F`` at snapshot ``k - 1`` are followed to
``k`` through the Rayleigh quotient ``r_i = u_i^T F_k u_i / s_max(k)`` (no eigenvector matching
needed). The modes alive at ``k - 1`` with ``r_i <= tol`` went first; when none crossed the
threshold (an onset by rank drop), the three with the largest drop of ``log(r_i / s_rel_i(k-1))``.
Each is reported with its index ``i`` (0 = largest at ``k - 1``), its ``s_i / s_max`` and its
``sigma2_i`` at ``k - 1``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import metrics
from .runs import Run

__all__ = ["CollapseDiagnostics", "collapse_diagnostics", "RANK_DROP", "MODE_DROP"]

#: Default fraction of the running maximum of the effective rank below which collapse starts.
RANK_DROP = 0.5
#: Default fraction of the modes whose loss (below the running maximum) marks the onset.
MODE_DROP = 0.1


@dataclass
class CollapseDiagnostics:
    """Series over snapshots and the onset (module docstring). ``onset_step`` is None when the
    rule never fires; ``first_modes`` lists dicts ``{index, s_rel, sigma2, rayleigh_rel}``."""

    steps: list[int]
    effective_rank: list[float]
    n_surviving: list[int]
    n_modes: int
    rule: str
    onset_step: int | None = None
    onset_reason: str | None = None
    first_modes: list[dict[str, float]] = field(default_factory=list)
    total_collapse: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rank_of(snap: dict[str, Any], s: np.ndarray) -> float:
    if "effective_rank" in snap and np.isfinite(snap["effective_rank"]):
        return float(snap["effective_rank"])
    return metrics.effective_rank(np.sqrt(np.clip(s, 0.0, None)), from_singular_values=True)


def collapse_diagnostics(run: Run, *, tol: float = metrics.COLLAPSE_REL_TOL,
                         rank_drop: float = RANK_DROP,
                         mode_drop: float = MODE_DROP) -> CollapseDiagnostics:
    """Collapse onset and the first modes to go, from all snapshots of ``run`` that hold ``F``."""
    if not 0.0 < rank_drop < 1.0:
        raise ValueError(f"rank_drop: must lie in (0, 1), got {rank_drop}")
    if not 0.0 < mode_drop <= 1.0:
        raise ValueError(f"mode_drop: must lie in (0, 1], got {mode_drop}")
    snaps = [s for s in run.snapshots() if "F" in s]
    if not snaps:
        raise ValueError(f"{run.path}: no snapshot holds the matrix F")
    m_drop = max(1, math.ceil(mode_drop * np.asarray(snaps[0]["F"]).shape[0] - 1e-9))
    rule = (f"n_surviving (s_j > {tol:g} s_max) at least {m_drop} below its running max, or "
            f"effective rank below {rank_drop:g} x its running max")
    steps, ranks, alive, spectra, Us = [], [], [], [], []
    s0_max = None
    for snap in snaps:
        s, U = metrics.eigh_desc(snap["F"])
        s0_max = s[0] if s0_max is None else s0_max
        n_alive = int(np.sum(~metrics.collapsed_mask(s, rel_tol=tol)))
        if s[0] <= tol * s0_max:
            n_alive = 0
        steps.append(int(snap["step"]))
        ranks.append(_rank_of(snap, s))
        alive.append(n_alive)
        spectra.append(s)
        Us.append(U)
    diag = CollapseDiagnostics(steps, ranks, alive, int(spectra[0].size), rule,
                               total_collapse=alive[-1] == 0)
    for k in range(1, len(snaps)):
        prev_alive, prev_rank = max(alive[:k]), max(ranks[:k])
        by_modes = alive[k] <= prev_alive - m_drop
        by_rank = ranks[k] < rank_drop * prev_rank
        if not (by_modes or by_rank):
            continue
        diag.onset_step = steps[k]
        diag.onset_reason = ("surviving modes " f"{prev_alive} -> {alive[k]}" if by_modes else
                             f"effective rank {prev_rank:.3g} -> {ranks[k]:.3g}")
        s_prev, U_prev = spectra[k - 1], Us[k - 1]
        snap_prev = snaps[k - 1]
        F_k = np.asarray(snaps[k]["F"], dtype=np.float64)
        smax_k = max(spectra[k][0], 1e-300)
        r = metrics.project_on_modes(F_k, U_prev) / smax_k
        s_rel_prev = np.clip(s_prev, 0.0, None) / max(s_prev[0], 1e-300)
        was_alive = ~metrics.collapsed_mask(s_prev, rel_tol=tol)
        if "C_same" in snap_prev and "C_cross" in snap_prev:
            sig = metrics.augmentation_sigma2(metrics.project_on_modes(snap_prev["C_same"], U_prev),
                                              metrics.project_on_modes(snap_prev["C_cross"], U_prev))
        else:
            sig = np.full(s_prev.shape, np.nan)
        gone = np.flatnonzero(was_alive & (r <= tol))
        if gone.size == 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                drop = np.log(np.clip(r, 1e-300, None)) - np.log(np.clip(s_rel_prev, 1e-300, None))
            gone = np.argsort(np.where(was_alive, drop, np.inf))[:3]
        diag.first_modes = [{"index": int(i), "s_rel": float(s_rel_prev[i]),
                             "sigma2": float(sig[i]), "rayleigh_rel": float(r[i])} for i in gone]
        break
    return diag
