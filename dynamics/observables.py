"""Observables along a trajectory of the linear two-layer model, and the trajectory containers.

Every integrator of the matrix half of the package (the matrix ODE of Lemma 1, the reduced
dynamics of Eqns 7/62 and the SGD simulation of the same network) returns a trajectory whose
observables are computed here, once, at the saved points only (never inside the time stepper):

- ``s``: eigenvalues of ``F = W X W^T`` (descending),
- ``p``: eigenvalues of ``sym(Wp)`` (descending),
- ``commutator_norm``: ``||[F, Wp]||_F`` (Theorem 3, Eqn 8),
- ``wp_sym_norm`` / ``wp_antisym_norm``: Frobenius norms of the symmetric / antisymmetric part
  of ``Wp`` (the paper's Fig. 8),
- ``tau``: the EMA ratio of assumption A1, ``Wa = tau W`` (see :func:`estimate_tau`),
- ``lambda_min_K``: smallest eigenvalue of ``K`` (Eqn 9),
- ``balance_residual``: ``||W W^T - Wp^T Wp / alpha_p - exp(-2 eta t) C||_F`` (Theorem 1),
- ``wa_correlation``: normalised correlation ``<Wa, W>_F / (||Wa||_F ||W||_F)`` (Fig. 7).

The metric definitions themselves (spectra, commutator, sym/antisym norms, correlation) live in
:mod:`analysis.metrics`; this module only assembles them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .jsonio import json_ready as _json_value
from .linalg import commutator_norm, matrix_correlation, spectrum, sym, sym_antisym_norms

__all__ = [
    "K_matrix",
    "lambda_min_K",
    "estimate_tau",
    "estimate_sigma2",
    "balance_residual",
    "Observables",
    "compute_observables",
    "MatrixTrajectory",
    "ReducedTrajectory",
]


# --------------------------------------------------------------------------- pure functions


def K_matrix(F: np.ndarray, Wp: np.ndarray, *, alpha_p: float, eta: float, sigma2: float,
             tau: float | np.ndarray) -> np.ndarray:
    """``K = (1+sigma2) [(alpha_p/2) F + Wp^2 - tau/(1+sigma2) Wp] + (3/2) eta I`` (Eqn 9).

    Defined under A1-A3 (``Wa = tau W``, isotropic data, symmetric ``Wp``). For a general ``Wp``
    its symmetric part is used. Batched over leading axes; ``tau`` may be one value per batch
    entry."""
    F = np.asarray(F, dtype=np.float64)
    Ws = sym(np.asarray(Wp, dtype=np.float64))
    tau = np.asarray(tau, dtype=np.float64)[..., None, None]
    eye = np.eye(F.shape[-1])
    return ((1.0 + sigma2) * (0.5 * alpha_p * F + Ws @ Ws) - tau * Ws + 1.5 * eta * eye)


def lambda_min_K(F: np.ndarray, Wp: np.ndarray, *, alpha_p: float, eta: float, sigma2: float,
                 tau: float | np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of ``K`` (Eqn 9); Theorem 3 needs it bounded below by ``lambda0 > 0``.
    NaN where ``tau`` is NaN (``W = 0``, A1 undefined)."""
    K = K_matrix(F, Wp, alpha_p=alpha_p, eta=eta, sigma2=sigma2, tau=np.nan_to_num(tau))
    lam = spectrum(K)[..., -1]
    return np.where(np.isnan(np.asarray(tau, dtype=np.float64)), np.nan, lam)


def estimate_tau(W: np.ndarray, Wa: np.ndarray) -> np.ndarray:
    """Least-squares ``tau`` of assumption A1, ``Wa ~ tau W``: ``tau = <Wa, W>_F / ||W||_F^2``.
    Exact when A1 holds; NaN where ``W = 0`` (A1 then says nothing). Batched."""
    W = np.asarray(W, dtype=np.float64)
    num = np.sum(np.asarray(Wa, dtype=np.float64) * W, axis=(-2, -1))
    den = np.sum(W * W, axis=(-2, -1))
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def estimate_sigma2(X: np.ndarray, Xp: np.ndarray) -> float:
    """``sigma2 = tr(X') / tr(X)``: exact under A2 (``X = c I``, ``X' = c sigma2 I``); for other
    data a scalar summary used only to evaluate ``K`` (Eqn 9), which is defined under A2."""
    trX = float(np.trace(X))
    if trX <= 0:
        raise ValueError("X: must have a positive trace to estimate sigma2")
    return float(np.trace(Xp)) / trX


def balance_residual(WWt: np.ndarray, Wp: np.ndarray, t: np.ndarray, *, alpha_p: float,
                     eta: float) -> np.ndarray:
    """Frobenius norm of ``W W^T - Wp^T Wp / alpha_p - exp(-2 eta t) C`` with ``C`` the value of
    ``W W^T - Wp^T Wp / alpha_p`` at the first saved point (Theorem 1). Zero along exact
    trajectories of the unsymmetrised gradient flow with stop-gradient (Eqns 2-4, any ``Wa``) and
    of the reduced Eqn 62; not conserved by the symmetrised flow (Eqn 7) unless ``[F, Wp] = 0``,
    nor without stop-gradient or with a fixed predictor. ``WWt`` is ``W W^T`` (``F`` under A2),
    time first."""
    Wp = np.asarray(Wp, dtype=np.float64)
    B = np.asarray(WWt, dtype=np.float64) - np.swapaxes(Wp, -1, -2) @ Wp / alpha_p
    t = np.asarray(t, dtype=np.float64)
    decay = np.exp(-2.0 * eta * (t - t[0]))[:, None, None]
    return np.linalg.norm(B - decay * B[0], axis=(-2, -1))


# --------------------------------------------------------------------------- containers


@dataclass
class Observables:
    """Observables at the saved times (time first). ``wa_correlation`` is None where there is no
    ``W`` (reduced dynamics)."""

    s: np.ndarray
    p: np.ndarray
    commutator_norm: np.ndarray
    wp_sym_norm: np.ndarray
    wp_antisym_norm: np.ndarray
    tau: np.ndarray
    lambda_min_K: np.ndarray
    balance_residual: np.ndarray
    wa_correlation: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


def compute_observables(t: np.ndarray, F: np.ndarray, Wp: np.ndarray, WWt: np.ndarray, *,
                        alpha_p: float, eta: float, sigma2: float, tau: np.ndarray,
                        W: np.ndarray | None = None, Wa: np.ndarray | None = None) -> Observables:
    """All observables of the module docstring from saved states (time first). ``F`` is
    ``W X W^T``, ``WWt`` is ``W W^T`` (the two coincide under A2); ``tau`` one value per time."""
    s_norm, a_norm = sym_antisym_norms(Wp)
    return Observables(
        s=spectrum(F),
        p=spectrum(Wp),
        commutator_norm=commutator_norm(F, Wp),
        wp_sym_norm=s_norm,
        wp_antisym_norm=a_norm,
        tau=np.asarray(tau, dtype=np.float64),
        lambda_min_K=lambda_min_K(F, Wp, alpha_p=alpha_p, eta=eta, sigma2=sigma2, tau=tau),
        balance_residual=balance_residual(WWt, Wp, t, alpha_p=alpha_p, eta=eta),
        wa_correlation=None if W is None or Wa is None else matrix_correlation(Wa, W),
    )


@dataclass
class _Trajectory:
    """Common part: saved times ``t``, observables ``obs`` and the parameters of the run."""

    t: np.ndarray
    obs: Observables
    params: dict[str, Any]

    def states(self) -> dict[str, np.ndarray]:  # overridden
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: parameters, the final time and the final value of every
        observable (NaN -> None)."""
        final = {k: v[-1] for k, v in self.obs.arrays().items()}
        return _json_value({"kind": type(self).__name__, "params": self.params,
                            "t_end": self.t[-1], "n_saved": len(self.t), "final": final})

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def save_npz(self, path: str | Path) -> Path:
        """Times, states and observables, every array time first."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, t=self.t, **self.states(),
                            **{f"obs_{k}": v for k, v in self.obs.arrays().items()})
        return path

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``summary.json`` and ``trajectory.npz`` into ``out_dir``."""
        out = Path(out_dir)
        return self.save_json(out / "summary.json"), self.save_npz(out / "trajectory.npz")


@dataclass
class MatrixTrajectory(_Trajectory):
    """States of the matrix dynamics at the saved times: ``W`` (T, n2, n1), ``Wp`` (T, n2, n2),
    ``Wa`` (T, n2, n1; equal to ``W`` for SimSiam)."""

    W: np.ndarray
    Wp: np.ndarray
    Wa: np.ndarray

    def states(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "Wp": self.Wp, "Wa": self.Wa}


@dataclass
class ReducedTrajectory(_Trajectory):
    """States of the reduced dynamics (Eqns 7/62) at the saved times: ``F`` and ``Wp``, both
    (T, n2, n2)."""

    F: np.ndarray
    Wp: np.ndarray

    def states(self) -> dict[str, np.ndarray]:
        return {"F": self.F, "Wp": self.Wp}
