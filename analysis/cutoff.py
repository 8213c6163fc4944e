"""What a forecaster may know at the cutoff of a run, and what the run did after it
(:mod:`analysis.scorecard` describes both)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import metrics
from .hparams import TheoryHParams, map_hparams
from .runconfig import RunConfig, as_run_config
from .runs import Run
from .errors import ConfigError

__all__ = ["CUTOFF", "CUTOFF_TOLERANCE", "FLOOR", "CutoffState", "Measured", "cutoff_state", "measure_after"]

#: Default cutoff, as a fraction of the run's last snapshot step.
CUTOFF = 0.15
#: How much later than asked (a fraction of the run) the cutoff snapshot may lie; a run without a
#: snapshot that close to the cutoff is refused for it.
CUTOFF_TOLERANCE = 0.05
#: Floor of relative eigenvalues before ``log10`` (a mode below it counts as this small).
FLOOR = 1e-6


@dataclass
class CutoffState:
    """Everything a forecaster may use (module docstring). Arrays are per cutoff mode ``j``
    (descending eigenvalues of ``F`` at the cutoff)."""

    step: int
    prev_step: int
    final_step: int
    target_steps: np.ndarray          # the snapshot steps after the cutoff to predict
    U: np.ndarray
    s: np.ndarray                     # eigenvalues of F at the cutoff
    s_prev: np.ndarray                # u_j^T F_prev u_j (the previous snapshot along U)
    same: np.ndarray
    cross: np.ndarray
    sigma2: np.ndarray                # (same - cross) / cross; NaN where cross <= 0
    sigma2_ci: np.ndarray | None      # (2, d) 16-84 % bootstrap interval, or None
    n_pairs: int | None
    p: np.ndarray | None              # u_j^T Wp u_j at the cutoff
    p_prev: np.ndarray | None
    alive: np.ndarray
    predictor: str
    config: RunConfig
    hp: TheoryHParams
    tol: float
    commutator: float | None = None        # relative ||[F, Wp]|| at the cutoff (linear predictors)
    commutator_prev: float | None = None   # the same at the snapshot before

    def __post_init__(self) -> None:
        self.config = as_run_config(self.config)  # a dict (tests, older callers) is read the same way

    @property
    def sigma2_filled(self) -> np.ndarray:
        """``sigma2`` with the modes that have no view-invariant signal (NaN) set to the largest
        finite value (the most augmentation-dominated), clipped at 0."""
        s2 = np.asarray(self.sigma2, dtype=np.float64)
        finite = s2[np.isfinite(s2)]
        fill = float(np.max(finite)) if finite.size else 1.0
        return np.clip(np.where(np.isfinite(s2), s2, fill), 0.0, None)


@dataclass
class Measured:
    """After the cutoff: ``along`` ``(k, d)`` = ``u_j^T F_k u_j``, ``spectra`` ``(k, d)`` the
    eigenvalues of ``F_k`` (descending), at ``steps``; the final fates."""

    steps: np.ndarray
    along: np.ndarray
    spectra: np.ndarray
    fates: np.ndarray
    total_collapse: bool
    overlap: np.ndarray | None = None  # ||P_alive u_j||^2, the share of u_j in the final surviving subspace
    tol: float = metrics.COLLAPSE_REL_TOL
    commutator_final: float | None = None  # relative ||[F, Wp]|| at the last snapshot

    @property
    def n_alive(self) -> int:
        return int(self.fates.sum())


def _snap_or_refuse(run: Run, step: int, keys: Sequence[str]) -> dict[str, Any]:
    snap = run.snapshot(step)
    missing = [k for k in keys if k not in snap]
    if missing:
        raise ConfigError(f"{run.path}: the snapshot at step {step} lacks {missing} (run with "
                         "log.save_matrices=true)")
    return snap


def cutoff_state(run: Run, *, cutoff: float = CUTOFF, tol: float = metrics.COLLAPSE_REL_TOL,
                 convention: str = "continuous") -> CutoffState:
    """The state at the cutoff snapshot of ``run`` (module docstring)."""
    if not (isinstance(cutoff, (int, float)) and 0 < cutoff < 1):
        raise ConfigError(f"cutoff={cutoff!r} is invalid: allowed a number in (0, 1)")
    steps = run.snapshot_steps
    if len(steps) < 3:
        raise ConfigError(f"{run.path}: needs at least 3 spectra snapshots, has {len(steps)}")
    final = steps[-1]
    later = [s for s in steps if s >= cutoff * final and s > steps[0]]
    c = later[0]
    if c == final:
        raise ConfigError(f"{run.path}: no snapshot after the cutoff step {c}; lower --cutoff")
    if c - cutoff * final > CUTOFF_TOLERANCE * final:
        raise ConfigError(f"{run.path}: the first snapshot after {cutoff:.0%} of the run is at step "
                          f"{c} of {final} ({c / final:.0%}), more than {CUTOFF_TOLERANCE:.0%} of the "
                          f"run later; a forecast from there would be nearly a backcast. Train with "
                          f"log.spectra_every <= {max(1, int(CUTOFF_TOLERANCE * final))} or choose "
                          f"--cutoff {c / final:.2f}")
    prev = steps[steps.index(c) - 1]
    snap = _snap_or_refuse(run, c, ("F", "same_on_F", "cross_on_F"))
    before = _snap_or_refuse(run, prev, ("F",))
    s, U = metrics.eigh_desc(snap["F"])
    same, cross = np.asarray(snap["same_on_F"]), np.asarray(snap["cross_on_F"])
    ci = None
    if "same_on_F_boot" in snap:
        boot = metrics.augmentation_sigma2(snap["same_on_F_boot"], snap["cross_on_F_boot"])
        with np.errstate(invalid="ignore"):
            ci = np.nanpercentile(boot, [16, 84], axis=0)
    p = p_prev = None
    if "Wp" in snap and "Wp" in before:
        p = metrics.project_on_modes(snap["Wp"], U)
        p_prev = metrics.project_on_modes(before["Wp"], U)
    cfg = run.cfg
    return CutoffState(
        step=c, prev_step=prev, final_step=final,
        target_steps=np.array([t for t in steps if t > c]),
        U=U, s=s, s_prev=metrics.project_on_modes(before["F"], U), same=same, cross=cross,
        sigma2=metrics.augmentation_sigma2(same, cross), sigma2_ci=ci,
        n_pairs=snap.get("n_probe_pairs"), p=p, p_prev=p_prev,
        alive=~metrics.collapsed_mask(s, rel_tol=tol),
        predictor=cfg.predictor.name, config=cfg,
        hp=map_hparams(cfg, convention), tol=tol,
        commutator=snap.get("relative_commutator"), commutator_prev=before.get("relative_commutator"))


def measure_after(run: Run, cut: CutoffState) -> Measured:
    """What the run did after the cutoff, along the cutoff's eigenvectors (module docstring)."""
    along, spectra = [], []
    for st in cut.target_steps:
        snap = _snap_or_refuse(run, int(st), ("F",))
        F = snap["F"]
        along.append(metrics.project_on_modes(F, cut.U))
        spectra.append(metrics.spectrum(F))
    along_a, spectra_a = np.array(along), np.array(spectra)
    total = bool(spectra_a[-1, 0] <= cut.tol * cut.s[0])
    lam, V = metrics.eigh_desc(F)
    alive = V[:, ~metrics.collapsed_mask(lam, rel_tol=cut.tol)]
    overlap = np.sum((alive.T @ cut.U) ** 2, axis=0)
    fates = (overlap >= 0.5) & (not total)
    return Measured(cut.target_steps, along_a, spectra_a, fates, total, overlap, cut.tol,
                    snap.get("relative_commutator"))
