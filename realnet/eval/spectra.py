"""Spectra snapshots of a real run, in the quantities of the theory (THEORY.md sections 1-3).

Every ``log.spectra_every`` steps the trainer writes ``spectra/step_XXXXXXX.npz`` and appends one
summary line to ``spectra.jsonl``. Every metric comes from :mod:`analysis.metrics` (one definition
for theory, simulation and real runs); this module only gathers the matrices.

Matrices (``d`` = projector output dimension; float64 in the files):

``F``
    Correlation of the online projector outputs: the predictor's running estimate when it keeps
    one (``F_source = "predictor"``, DirectPred's ``F <- rho F + (1 - rho) E[f f^T]``, section 3),
    else ``C_same`` of the probe batch (``F_source = "probe"``).
``C_same = E[f1 f1^T + f2 f2^T] / 2`` and ``C_cross = sym E[f1 f2^T]``
    Same-view and cross-view correlations of the two augmented views of a fixed probe batch
    (uncentred). In the linear model (section 1) these are ``W (X + X') W^T`` and ``W X W^T``, so
    per eigendirection ``u_j`` of ``F`` the difference ``u_j^T (C_same - C_cross) u_j`` measures the
    augmentation strength along ``u_j``; both projections are stored (``same_on_F``,
    ``cross_on_F``), with ``n_boot`` bootstrap replicates over the probe's view pairs
    (``same_on_F_boot``, ``cross_on_F_boot``, ``(n_boot, d)``; :func:`analysis.metrics.bootstrap_mode_moments`)
    and the number of pairs (``n_probe_pairs``, ``log.probe_size``) for confidence intervals of
    ``sigma2_j``.
``Wp``
    The linear predictor as applied (``out = z @ Wp.T``) when there is one.

Scalars and vectors (names in the file and in the jsonl line): ``F_eigvals`` (descending),
``Wp_sym_eigvals`` (eigenvalues of the symmetric part of ``Wp``), ``alignment``
(``cos(Wp u_j, u_j)``, paper's Fig. 2), ``asymmetry`` (``||Wp - Wp^T|| / ||Wp||``),
``relative_commutator`` (``||[F, Wp]|| / (||F|| ||Wp||)``, Theorem 3), ``effective_rank``
(RankMe of the probe projector outputs, both views), ``effective_rank_trunk`` (RankMe of the
trunk features, view 1), ``normalised_std`` (std of the L2-normalised projector outputs),
``participation_ratio`` and ``n_collapsed_modes`` of ``F``, ``align`` and ``uniform`` (Wang &
Isola 2020: ``E ||z1 - z2||^2`` of the normalised probe pairs, and ``log E exp(-2 ||zi - zj||^2)``
over the normalised outputs of the first :data:`UNIFORMITY_PAIRS` probe pairs).

The probe batch is a fixed set of images and its two views are drawn from a generator re-seeded
at every snapshot, so all snapshots of a run see the same views; the networks run in eval mode
(BatchNorm running statistics) so a snapshot never changes the training state.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from analysis import metrics
from analysis.runs import SPECTRA_LOG, JsonlLog, atomic_file, snapshot_path
from analysis.runs import read_snapshot_file as read_snapshot

__all__ = [
    "ProbeViews",
    "probe_views",
    "view_correlations",
    "snapshot",
    "summary_line",
    "write_snapshot",
    "read_snapshot",
    "snapshot_path",
]


class ProbeViews(tuple):
    """``(z1, z2, h1)``: projector outputs of both views (n, d) and trunk features of view 1
    (n, feat), float64 numpy arrays."""

    __slots__ = ()

    def __new__(cls, z1: np.ndarray, z2: np.ndarray, h1: np.ndarray) -> "ProbeViews":
        return super().__new__(cls, (z1, z2, h1))

    z1 = property(lambda self: self[0])
    z2 = property(lambda self: self[1])
    h1 = property(lambda self: self[2])


@torch.no_grad()
def probe_views(backbone: torch.nn.Module, projector: torch.nn.Module, images: torch.Tensor,
                augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor], *, seed: int,
                batch_size: int = 256) -> ProbeViews:
    """Two augmented views of ``images`` (uint8, on the device) drawn from a generator seeded
    with ``seed``, passed through the online ``backbone`` and ``projector`` in eval mode (restored
    afterwards). Returns float64 numpy arrays."""
    g = torch.Generator(device=images.device)
    g.manual_seed(int(seed))
    modes = (backbone.training, projector.training)
    backbone.eval()
    projector.eval()
    z1s, z2s, h1s = [], [], []
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            v1 = augment(x, g)
            v2 = augment(x, g)
            h1 = backbone(v1).float()
            z1s.append(projector(h1).float().cpu())
            z2s.append(projector(backbone(v2).float()).float().cpu())
            h1s.append(h1.cpu())
    finally:
        backbone.train(modes[0])
        projector.train(modes[1])
    cat = lambda xs: torch.cat(xs).double().numpy()  # noqa: E731
    return ProbeViews(cat(z1s), cat(z2s), cat(h1s))


def view_correlations(z1: np.ndarray, z2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C_same, C_cross)``: ``E[f1 f1^T + f2 f2^T]/2`` and ``sym E[f1 f2^T]`` over the batch
    (uncentred, like ``F`` in section 3)."""
    z1 = np.asarray(z1, dtype=np.float64)
    z2 = np.asarray(z2, dtype=np.float64)
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1, z2: expected two (n, d) arrays of one shape, got {z1.shape}, "
                         f"{z2.shape}")
    n = z1.shape[0]
    same = (z1.T @ z1 + z2.T @ z2) / (2.0 * n)
    cross = metrics.sym(z1.T @ z2 / n)
    return same, cross


#: Probe pairs (both views: twice as many outputs) over which uniformity is computed; its pairwise
#: distances grow with the square of the rows (8192 pairs would need 2 GB).
UNIFORMITY_PAIRS = 1024


def snapshot(step: int, views: ProbeViews, *, F: np.ndarray | None = None,
             Wp: np.ndarray | None = None, save_matrices: bool = True,
             n_boot: int = 100) -> dict[str, Any]:
    """All snapshot quantities as a dict of numpy arrays / Python scalars (see module docstring).
    ``F``: the predictor's running correlation, or None to use ``C_same`` of the probe views.
    ``n_boot``: bootstrap replicates over the probe's view pairs of ``same_on_F`` / ``cross_on_F``
    (0: none)."""
    same, cross = view_correlations(views.z1, views.z2)
    source = "probe" if F is None else "predictor"
    F = same if F is None else np.asarray(F, dtype=np.float64)
    s, U = metrics.eigh_desc(F)
    Z = np.concatenate([views.z1, views.z2])
    out: dict[str, Any] = {
        "step": int(step),
        "F_source": source,
        "F_eigvals": s,
        "C_same_eigvals": metrics.spectrum(same),
        "C_cross_eigvals": metrics.spectrum(cross),
        "same_on_F": metrics.project_on_modes(same, U),
        "cross_on_F": metrics.project_on_modes(cross, U),
        "n_probe_pairs": int(views.z1.shape[0]),
        "effective_rank": metrics.effective_rank(Z),
        "effective_rank_trunk": metrics.effective_rank(views.h1),
        "normalised_std": metrics.normalised_embedding_std(Z),
        "participation_ratio": float(metrics.participation_ratio(s)),
        "n_collapsed_modes": int(metrics.n_collapsed_modes(s)),
        # Wang & Isola (2020) on the L2-normalised projector outputs of the fixed probe pairs;
        # uniformity over the first UNIFORMITY_PAIRS pairs (its cost is quadratic in the rows)
        "align": float(metrics.wang_isola_alignment(views.z1, views.z2)),
        "uniform": float(metrics.wang_isola_uniformity(np.concatenate(
            [views.z1[:UNIFORMITY_PAIRS], views.z2[:UNIFORMITY_PAIRS]]))),
    }
    if save_matrices:
        out.update(F=F, C_same=same, C_cross=cross)
    if n_boot:
        boot_same, boot_cross = metrics.bootstrap_mode_moments(views.z1, views.z2, U, n_boot=n_boot,
                                                               seed=int(step))
        out.update(same_on_F_boot=boot_same.astype(np.float32), cross_on_F_boot=boot_cross.astype(np.float32))
    if Wp is not None:
        Wp = np.asarray(Wp, dtype=np.float64)
        sym_n, anti_n = metrics.sym_antisym_norms(Wp)
        out.update(
            Wp_sym_eigvals=metrics.spectrum(Wp),
            alignment=metrics.alignment(F, Wp),
            asymmetry=float(metrics.asymmetry(Wp)),
            relative_commutator=float(metrics.relative_commutator_norm(F, Wp)),
            Wp_sym_norm=float(sym_n),
            Wp_antisym_norm=float(anti_n),
        )
        if save_matrices:
            out["Wp"] = Wp
    return out


def summary_line(snap: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready one-line summary of a snapshot (scalars only)."""
    s = snap["F_eigvals"]
    line: dict[str, Any] = {
        "step": snap["step"],
        "F_source": snap["F_source"],
        "F_eig_max": float(s[0]),
        "F_eig_min": float(s[-1]),
    }
    for k in ("effective_rank", "effective_rank_trunk", "normalised_std", "participation_ratio",
              "n_collapsed_modes", "asymmetry", "relative_commutator", "align", "uniform"):
        if k in snap:
            line[k] = snap[k]
    if "alignment" in snap:
        line["alignment_mean"] = float(np.mean(snap["alignment"]))
        line["alignment_min"] = float(np.min(snap["alignment"]))
        line["Wp_eig_max"] = float(snap["Wp_sym_eigvals"][0])
        line["Wp_eig_min"] = float(snap["Wp_sym_eigvals"][-1])
    return line


def write_snapshot(folder: str | Path, snap: dict[str, Any]) -> dict[str, Any]:
    """Write the ``.npz`` and append the summary line to ``<folder>/spectra.jsonl``; returns the
    line."""
    path = snapshot_path(folder, snap["step"])
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in snap.items()})
    line = summary_line(snap)
    JsonlLog(Path(folder) / SPECTRA_LOG).write(line)
    return line
