"""One definition of each metric, shared by every source (theory trajectories, the linear SGD
simulation, real runs).

All functions are pure and take numpy arrays (float64 recommended); callers holding torch tensors
convert with ``.detach().cpu().double().numpy()``. Square-matrix functions accept a batch of
matrices in leading axes where noted.

Conventions
-----------
- Eigenvalues of a symmetric matrix are returned in *descending* order, eigenvectors as the
  columns of ``U`` in the same order (so mode ``j = 0`` is the largest mode of ``F``).
- ``F`` is the (uncentred) correlation of projector outputs / ``W X W^T`` in the theory
  (THEORY.md section 1); ``Wp`` is the (linear) predictor.
"""
from __future__ import annotations

import numpy as np

# The matrix observables of the theory live with the theory (the bottom layer); this module is
# their public home for every source.
from dynamics.linalg import (alignment, antisym, asymmetry, commutator, commutator_norm, eigh_desc,
                             matrix_correlation, relative_commutator_norm, spectrum, sym,
                             sym_antisym_norms)

__all__ = [
    "sym",
    "antisym",
    "eigh_desc",
    "spectrum",
    "alignment",
    "asymmetry",
    "sym_antisym_norms",
    "commutator",
    "commutator_norm",
    "relative_commutator_norm",
    "effective_rank",
    "participation_ratio",
    "n_collapsed_modes",
    "normalised_embedding_std",
    "matrix_correlation",
    "collapsed_mask",
    "project_on_modes",
    "augmentation_sigma2",
    "wang_isola_alignment",
    "wang_isola_uniformity",
    "COLLAPSE_REL_TOL",
    "bootstrap_mode_moments",
]

#: A mode j counts as collapsed when ``s_j <= COLLAPSE_REL_TOL * reference`` (see
#: :func:`n_collapsed_modes`).
COLLAPSE_REL_TOL = 1e-3


def effective_rank(Z: np.ndarray, *, from_singular_values: bool = False) -> float:
    """RankMe effective rank (Garrido et al. 2023): ``exp(-sum_k q_k log q_k)`` with
    ``q_k = sigma_k / sum(sigma) + 1e-7`` and ``sigma_k`` the singular values of the (uncentred)
    embedding matrix ``Z`` (n x d). Between ~1 (all embeddings on one line) and ``min(n, d)``.
    With ``from_singular_values=True``, ``Z`` is the vector of singular values itself."""
    sv = np.asarray(Z, dtype=np.float64)
    if not from_singular_values:
        if sv.ndim != 2:
            raise ValueError(f"Z: expected an (n, d) embedding matrix, got shape {sv.shape}")
        sv = np.linalg.svd(sv, compute_uv=False)
    total = sv.sum()
    if not np.isfinite(total) or total <= 0:
        return 1.0 if total == 0 else float("nan")
    q = sv / total + 1e-7
    return float(np.exp(-np.sum(q * np.log(q))))


def participation_ratio(s: np.ndarray) -> np.ndarray:
    """Participation ratio ``(sum_j s_j)^2 / sum_j s_j^2`` of a spectrum (last axis)."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, None)
    den = np.sum(s * s, axis=-1)
    num = np.sum(s, axis=-1) ** 2
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def n_collapsed_modes(s: np.ndarray, reference: float | np.ndarray | None = None,
                      rel_tol: float = COLLAPSE_REL_TOL) -> np.ndarray:
    """Number of collapsed modes of a spectrum ``s`` (last axis).

    Rule: mode ``j`` is collapsed when ``s_j <= rel_tol * reference``. ``reference`` is the scale
    of a healthy mode; by default the largest eigenvalue of ``s`` itself (so a spectrum that has
    shrunk uniformly to ~0 counts as *not* collapsed by this function: compare against the initial
    spectrum by passing ``reference=s0.max()`` to catch a total collapse)."""
    return np.sum(collapsed_mask(s, reference, rel_tol), axis=-1)


def collapsed_mask(s: np.ndarray, reference: float | np.ndarray | None = None,
                   rel_tol: float = COLLAPSE_REL_TOL) -> np.ndarray:
    """Per-mode form of :func:`n_collapsed_modes` (same rule): True where
    ``s_j <= rel_tol * reference`` (``reference`` defaults to ``max_j s_j``)."""
    s = np.asarray(s, dtype=np.float64)
    if reference is None:
        ref = np.max(s, axis=-1, keepdims=True)
    else:
        ref = np.expand_dims(np.asarray(reference, dtype=np.float64), -1)
    return s <= rel_tol * ref


def normalised_embedding_std(Z: np.ndarray) -> float:
    """Mean over dimensions of the per-dimension std of L2-normalised embeddings (SimSiam's
    collapse monitor): 0 for a collapsed representation, ``~1/sqrt(d)`` for embeddings spread
    uniformly on the sphere."""
    Z = np.asarray(Z, dtype=np.float64)
    n = np.linalg.norm(Z, axis=1, keepdims=True)
    Zn = Z / np.maximum(n, 1e-12)
    return float(np.mean(np.std(Zn, axis=0)))


def project_on_modes(C: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``u_j^T C u_j`` for each column ``u_j`` of ``U`` (the diagonal of ``U^T C U``)."""
    U = np.asarray(U, dtype=np.float64)
    return np.einsum("ij,ik,kj->j", U, np.asarray(C, dtype=np.float64), U)


def augmentation_sigma2(same_on_modes: np.ndarray, cross_on_modes: np.ndarray) -> np.ndarray:
    """Augmentation strength per mode (THEORY section 1): with ``C_same = W (X + X') W^T`` (the
    views' own second moment) and ``C_cross = W X W^T`` (the cross moment of two views),
    ``sigma2_j = (u_j^T C_same u_j - u_j^T C_cross u_j) / u_j^T C_cross u_j``; under A2
    (``X = I``, ``X' = sigma2 I``) every mode gives ``sigma2``. NaN where the cross moment is
    not positive (a mode with no view-invariant signal: the linear theory has no ``sigma2``
    there)."""
    same = np.asarray(same_on_modes, dtype=np.float64)
    cross = np.asarray(cross_on_modes, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cross > 0, (same - cross) / np.where(cross > 0, cross, 1.0), np.nan)


def bootstrap_mode_moments(z1: np.ndarray, z2: np.ndarray, U: np.ndarray, *, n_boot: int = 100,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates over view pairs of the same-view and cross-view moments along the
    columns ``u_j`` of ``U``: ``(same, cross)``, each ``(n_boot, d)``, with
    ``same_j = mean_b (y1_bj^2 + y2_bj^2)/2`` and ``cross_j = mean_b y1_bj y2_bj`` (``y = z U``)
    over a resample of the ``n`` pairs drawn with replacement (multinomial weights from a
    generator seeded by ``seed``). :func:`augmentation_sigma2` of each replicate gives the
    bootstrap distribution of ``sigma2_j``."""
    z1 = np.asarray(z1, dtype=np.float64)
    z2 = np.asarray(z2, dtype=np.float64)
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 2:
        raise ValueError(f"z1, z2: expected two (n >= 2, d) arrays of one shape, got {z1.shape}, {z2.shape}")
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot: must be an integer >= 1, got {n_boot!r}")
    y1, y2 = z1 @ U, z2 @ U
    n = y1.shape[0]
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n
    return w @ ((y1 ** 2 + y2 ** 2) / 2.0), w @ (y1 * y2)


def _unit_rows(Z: np.ndarray) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    return Z / np.maximum(np.linalg.norm(Z, axis=-1, keepdims=True), 1e-12)


def wang_isola_alignment(z1: np.ndarray, z2: np.ndarray, alpha: float = 2.0) -> float:
    """Alignment of Wang & Isola (2020): ``E ||f(x) - f(x')||^alpha`` over positive pairs (rows
    of ``z1``, ``z2``: two views of one sample), on L2-normalised embeddings. 0 for identical
    views, 4 (alpha = 2) for opposite ones."""
    z1, z2 = _unit_rows(z1), _unit_rows(z2)
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1, z2: expected two (n, d) arrays of one shape, got {z1.shape}, "
                         f"{z2.shape}")
    return float(np.mean(np.linalg.norm(z1 - z2, axis=1) ** alpha))


def wang_isola_uniformity(Z: np.ndarray, t: float = 2.0) -> float:
    """Uniformity of Wang & Isola (2020): ``log E exp(-t ||f(x) - f(y)||^2)`` over the distinct
    pairs ``x != y`` of the rows of ``Z``, on L2-normalised embeddings. 0 for a collapsed
    representation (all rows equal); the more uniform on the sphere, the more negative."""
    Zn = _unit_rows(Z)
    if Zn.ndim != 2 or Zn.shape[0] < 2:
        raise ValueError(f"Z: expected an (n, d) embedding matrix with n >= 2, got {Zn.shape}")
    sq = np.clip(2.0 - 2.0 * (Zn @ Zn.T), 0.0, None)  # ||a - b||^2 of unit vectors
    iu = np.triu_indices(Zn.shape[0], k=1)
    v = -t * sq[iu]
    m = v.max()
    return float(m + np.log(np.mean(np.exp(v - m))))
