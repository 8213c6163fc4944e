"""Matrix observables of the theory (THEORY.md sections 1-2): symmetric and antisymmetric parts,
descending eigen-decompositions, alignment of ``Wp`` with the eigenbasis of ``F``, commutator
norms (Theorem 3) and the correlation of two matrices (paper's Fig. 7). Pure numpy functions,
batched over leading axes where noted; :mod:`analysis.metrics` re-exports them as the single
definition every source uses.

Eigenvalues of a symmetric matrix come in *descending* order, eigenvectors as the columns of ``U``
in the same order (mode ``j = 0`` is the largest mode of ``F``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["sym", "antisym", "eigh_desc", "spectrum", "alignment", "sym_antisym_norms", "asymmetry",
           "commutator", "commutator_norm", "relative_commutator_norm", "matrix_correlation"]


def sym(A: np.ndarray) -> np.ndarray:
    """Symmetric part ``(A + A^T)/2`` (over the last two axes)."""
    A = np.asarray(A)
    return 0.5 * (A + np.swapaxes(A, -1, -2))


def antisym(A: np.ndarray) -> np.ndarray:
    """Antisymmetric part ``(A - A^T)/2`` (over the last two axes)."""
    A = np.asarray(A)
    return 0.5 * (A - np.swapaxes(A, -1, -2))


def eigh_desc(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the symmetric part of ``F``: ``(s, U)`` with ``s`` descending and
    ``F = U diag(s) U^T``. Batched over leading axes."""
    s, U = np.linalg.eigh(sym(np.asarray(F, dtype=np.float64)))
    return s[..., ::-1], U[..., ::-1]


def spectrum(F: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric part of ``F`` in descending order (batched)."""
    return np.linalg.eigvalsh(sym(np.asarray(F, dtype=np.float64)))[..., ::-1]


def alignment(F: np.ndarray, Wp: np.ndarray) -> np.ndarray:
    """Per-mode alignment ``cos(Wp u_j, u_j)`` for the eigenvectors ``u_j`` of ``F``, ordered by
    descending eigenvalue of ``F`` (the paper's Fig. 2 "alignment"). A predictor that shares the
    eigenbasis of ``F`` with positive eigenvalues gives 1 for every mode. A mode with
    ``Wp u_j = 0`` gives 0."""
    _, U = eigh_desc(F)
    WU = np.asarray(Wp, dtype=np.float64) @ U  # columns: Wp u_j
    num = np.sum(WU * U, axis=-2)
    den = np.linalg.norm(WU, axis=-2) * np.linalg.norm(U, axis=-2)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def sym_antisym_norms(Wp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frobenius norms of the symmetric and antisymmetric parts of ``Wp`` (paper's Fig. 8)."""
    return (np.linalg.norm(sym(Wp), axis=(-2, -1)), np.linalg.norm(antisym(Wp), axis=(-2, -1)))


def asymmetry(Wp: np.ndarray) -> np.ndarray:
    """``||Wp - Wp^T||_F / ||Wp||_F`` (0 for a symmetric predictor; 0 when ``Wp = 0``)."""
    Wp = np.asarray(Wp, dtype=np.float64)
    num = np.linalg.norm(Wp - np.swapaxes(Wp, -1, -2), axis=(-2, -1))
    den = np.linalg.norm(Wp, axis=(-2, -1))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def commutator(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``[A, B] = AB - BA``."""
    return A @ B - B @ A


def commutator_norm(F: np.ndarray, Wp: np.ndarray) -> np.ndarray:
    """``||[F, Wp]||_F`` (Theorem 3, Eqn 8)."""
    return np.linalg.norm(commutator(np.asarray(F, float), np.asarray(Wp, float)), axis=(-2, -1))


def relative_commutator_norm(F: np.ndarray, Wp: np.ndarray) -> np.ndarray:
    """``||[F, Wp]||_F / (||F||_F ||Wp||_F)``: scale-free, at most 2 (0 when commuting)."""
    den = np.linalg.norm(F, axis=(-2, -1)) * np.linalg.norm(Wp, axis=(-2, -1))
    num = commutator_norm(F, Wp)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def matrix_correlation(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Normalised correlation ``<A, B>_F / (||A||_F ||B||_F)`` (paper's Fig. 7 for ``Wa`` and
    ``W``); 0 when either is 0."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    num = np.sum(A * B, axis=(-2, -1))
    den = np.linalg.norm(A, axis=(-2, -1)) * np.linalg.norm(B, axis=(-2, -1))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
