"""Minibatch SGD on the actual linear two-layer network: the ground truth the ODEs are checked
against.

Data (additive Gaussian augmentation): a sample ``x ~ N(0, Sigma_x)`` and two views
``x1 = x + n1``, ``x2 = x + n2`` with independent ``n1, n2 ~ N(0, Sigma_n)``. Then the
augmentation mean is ``xbar = x``, so ``X = Sigma_x`` and ``X' = Sigma_n`` (THEORY section 1);
any PSD pair ``(X, X')`` of the matrix ODE is sampled this way, so the two descriptions are one.

Loss (Eqn 1, plain L2) on a minibatch of ``B`` pairs, rows ``x1_b``, ``x2_b``:
``L = 1/(2B) sum_b ||r_b||^2`` with ``r_b = Wp W x1_b - Wa x2_b`` (``Wa = W`` for SimSiam).
Gradients, derived by hand (checked against finite differences in the tests):

```
dL/dWp = (1/B) sum_b r_b (W x1_b)^T
dL/dW  = (1/B) sum_b Wp^T r_b x1_b^T                    (stop-gradient on the target)
dL/dW  = (1/B) sum_b [Wp^T r_b x1_b^T - r_b x2_b^T]     (no stop-gradient, Wa = W)
```

Their expectations are minus the loss parts of Eqns 2-3. One step with online learning rate
``lr`` (every update from the pre-step weights, so the expected step is exactly one forward Euler
step of the ODE with ``dt = lr``; real BYOL moves the target after the online step, which differs
by O(lr^2) per step):

```
W  <- W  - lr (dL/dW + eta W)
Wp <- Wp - lr (alpha_p dL/dWp + eta Wp)       (alpha_p sym(dL/dWp) with a symmetrised predictor)
Wa <- gamma_a Wa + (1 - gamma_a) W,  gamma_a = 1 - lr beta
```

so that step ``k`` is ODE time ``t = k lr``. Optional DirectPred (THEORY section 3): a running
estimate ``F_hat <- rho F_hat + (1 - rho) mean(f f^T)`` of the online outputs of both views
(first batch initialises it) and, after every ``freq``-th step, ``Wp = U diag(p_j) U^T`` with
``p_j = max((max(s_j,0)/s_max)^alpha + eps, floor)`` (``alpha = 1/2`` is DirectPred).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .directset import directset_spectrum
from .linalg import eigh_desc, sym

from ._validate import check_in_range, check_nonnegative, check_positive
from .integrate import NonFiniteStateError, save_grid
from .matrix import matrix_trajectory, prepare_matrix_problem
from .observables import MatrixTrajectory

__all__ = ["DirectPredConfig", "directset_p", "directpred_wp", "running_correlation", "psd_sqrt", "sample_views", "minibatch_loss",
           "minibatch_gradients", "simulate_sgd"]


@dataclass(frozen=True)
class DirectPredConfig:
    """DirectPred / DirectSet(alpha) settings: ``freq`` (set ``Wp`` every ``freq`` steps), ``rho``
    (running-average momentum), ``eps`` (added to every ``p_j``; the paper's best is 0.1),
    ``floor`` (lower bound of ``p_j``; the public code uses 1e-4), ``alpha`` (exponent; 1/2 is
    DirectPred, 1 DirectCopy-like), ``cj`` (the c_j ablation, paper's Table 7: ``p_j =
    max(e_j/e_max - c_j, floor)^alpha``; 0 = off, and ``eps`` is then unused)."""

    freq: int = 1
    rho: float = 0.3
    eps: float = 0.1
    floor: float = 1e-4
    alpha: float = 0.5
    cj: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.freq, (int, np.integer)) or self.freq < 1:
            raise ValueError(f"freq: must be an integer >= 1, got {self.freq!r}")
        check_in_range("rho", self.rho, 0.0, 1.0, hi_open=True)
        check_nonnegative("eps", self.eps)
        check_positive("floor", self.floor)
        check_positive("alpha", self.alpha)
        if not (np.isfinite(self.cj) and self.cj < 1):
            raise ValueError(f"cj: must be a finite number < 1, got {self.cj!r}")


def directset_p(e, cfg: DirectPredConfig = DirectPredConfig()) -> np.ndarray:
    """DirectSet(alpha) spectrum (THEORY section 3): ``p_j = max((max(e_j, 0)/e_max)^alpha + eps,
    floor)`` along the last axis (the eigenvalues of :func:`directpred_wp`); with ``cj != 0``
    (Table 7's form) ``p_j = max(e_j/e_max - cj, floor)^alpha``. An all-zero ``e`` gives
    ``max(eps, floor)`` (``max(-cj, floor)^alpha``). The rule is
    :func:`dynamics.directset.directset_spectrum`, the one realnet's predictors use."""
    return directset_spectrum(np.asarray(e, dtype=np.float64), alpha=cfg.alpha, eps=cfg.eps,
                              floor=cfg.floor, cj=cfg.cj)


def running_correlation(F_hat: np.ndarray | None, f: np.ndarray, rho: float) -> np.ndarray:
    """DirectPred's running correlation (THEORY.md section 3): ``rho F_hat + (1 - rho) mean_i
    f_i f_i^T`` over the rows of ``f`` (the online outputs of both views, not centred); the first
    batch (``F_hat`` None) sets it."""
    F_batch = f.T @ f / f.shape[0]
    return F_batch if F_hat is None else rho * F_hat + (1 - rho) * F_batch


def directpred_wp(F_hat: np.ndarray, cfg: DirectPredConfig) -> np.ndarray:
    """``Wp = U diag(p_j) U^T`` from the eigen-decomposition ``F_hat = U diag(s_j) U^T`` with
    ``p = directset_p(s)`` (DirectPred for ``alpha = 1/2``)."""
    s, U = eigh_desc(F_hat)
    return (U * directset_p(s, cfg)) @ U.T


def psd_sqrt(A: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (negative round-off eigenvalues clipped)."""
    lam, U = np.linalg.eigh(sym(A))
    return (U * np.sqrt(np.clip(lam, 0.0, None))) @ U.T


def sample_views(rng: np.random.Generator, X_half: np.ndarray, Xp_half: np.ndarray, batch: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``x1 = x + n1``, ``x2 = x + n2`` with ``x ~ N(0, X)``, ``n ~ N(0, X')``, given the
    symmetric square roots of ``X`` and ``X'``; shapes (batch, n1)."""
    z = rng.standard_normal((3, batch, X_half.shape[0]))
    x = z[0] @ X_half
    return x + z[1] @ Xp_half, x + z[2] @ Xp_half


def minibatch_loss(W: np.ndarray, Wp: np.ndarray, Wa: np.ndarray, x1: np.ndarray,
                   x2: np.ndarray) -> float:
    """``1/(2B) sum_b ||Wp W x1_b - Wa x2_b||^2`` (Eqn 1 on a minibatch; rows are samples)."""
    r = x1 @ (Wp @ W).T - x2 @ Wa.T
    return 0.5 * float(np.sum(r * r)) / x1.shape[0]


def minibatch_gradients(W: np.ndarray, Wp: np.ndarray, Wa: np.ndarray, x1: np.ndarray,
                        x2: np.ndarray, *, stop_grad: bool = True
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/dW, dL/dWp)`` of :func:`minibatch_loss` (module docstring). With
    ``stop_grad=False`` pass ``Wa = W``: the gradient then also flows through the target."""
    B = x1.shape[0]
    f1 = x1 @ W.T                       # (B, n2) online outputs
    r = f1 @ Wp.T - x2 @ Wa.T           # (B, n2) residuals r_b
    gWp = r.T @ f1 / B
    rx1 = r.T @ x1 / B                  # (n2, n1)
    gW = Wp.T @ rx1
    if not stop_grad:
        gW -= r.T @ x2 / B
    return gW, gWp


def _check_finite_step(step: int, lr: float, **arrays: np.ndarray) -> None:
    for name, A in arrays.items():
        if A is not None and not np.isfinite(A).all():
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
            raise NonFiniteStateError(step * lr, step, f"{name}[{','.join(map(str, idx))}]", idx)


def simulate_sgd(W0, Wp0, *, X, Xp, lr: float, batch: int, t_end: float, alpha_p: float = 1.0,
                 eta: float = 0.0, beta: float | None = None, Wa0=None, stop_grad: bool = True,
                 predictor: bool = True, symmetric_wp: bool = False,
                 directpred: DirectPredConfig | None = None, n_save: int = 201, seed: int = 0,
                 sigma2: float | None = None, progress: bool = False) -> MatrixTrajectory:
    """Train the linear network ``Wp W`` by minibatch SGD (module docstring) for
    ``t_end / lr`` steps of ``batch`` pairs sampled with ``np.random.default_rng(seed)``.

    Arguments mirror :func:`dynamics.matrix.integrate_matrix` (``X = Sigma_x``,
    ``Xp = Sigma_n``); the saved steps are those of the Euler ODE with ``dt = lr`` and the same
    ``n_save``, at times ``t = step * lr``. ``directpred`` sets ``Wp`` directly every ``freq``
    steps (needs a trained predictor). Returns a :class:`MatrixTrajectory` with the same
    observables as the ODE (``F = W X W^T`` with the population ``X``)."""
    prm, W, Wp, Wa = prepare_matrix_problem(
        W0, Wp0, X=X, Xp=Xp, alpha_p=alpha_p, eta=eta, beta=beta, Wa0=Wa0, stop_grad=stop_grad,
        predictor=predictor, symmetric_wp=symmetric_wp)
    lr = float(check_positive("lr", lr))
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch: must be an integer >= 1, got {batch!r}")
    if prm.beta is not None and lr * prm.beta > 1.0:
        raise ValueError(f"beta: lr * beta must be <= 1 (EMA momentum gamma_a = 1 - lr*beta >= 0), "
                         f"got lr*beta = {lr * prm.beta:g}")
    if directpred is not None and not prm.predictor:
        raise ValueError("directpred: needs predictor=True (Wp trains between settings)")
    if sigma2 is not None:
        sigma2 = float(check_nonnegative("sigma2", sigma2))
    check_positive("t_end", t_end)
    n_steps, save_at = save_grid(t_end, lr, n_save)

    rng = np.random.default_rng(seed)
    X_half, Xp_half = psd_sqrt(prm.X), psd_sqrt(prm.Xp)
    T = len(save_at)
    Ws, Wps = np.empty((T,) + W.shape), np.empty((T,) + Wp.shape)
    Was = None if Wa is None else np.empty((T,) + W.shape)
    F_hat = None

    def record(k: int) -> None:
        Ws[k], Wps[k] = W, Wp
        if Was is not None:
            Was[k] = Wa

    record(0)
    k_save = 1
    bar = _progress_bar(progress, n_steps)
    for step in range(1, n_steps + 1):
        x1, x2 = sample_views(rng, X_half, Xp_half, batch)
        target = W if Wa is None else Wa
        gW, gWp = minibatch_gradients(W, Wp, target, x1, x2, stop_grad=prm.stop_grad)
        if directpred is not None:
            F_hat = running_correlation(F_hat, np.concatenate([x1, x2]) @ W.T, directpred.rho)
        W_new = W - lr * (gW + prm.eta * W)
        if prm.predictor:
            Wp = Wp - lr * (prm.alpha_p * (sym(gWp) if prm.symmetric_wp else gWp) + prm.eta * Wp)
        if Wa is not None:
            Wa = Wa + lr * prm.beta * (W - Wa)
        W = W_new
        if directpred is not None and step % directpred.freq == 0:
            Wp = directpred_wp(F_hat, directpred)
        _check_finite_step(step, lr, W=W, Wp=Wp, Wa=Wa)
        if k_save < T and step == save_at[k_save]:
            record(k_save)
            k_save += 1
        if bar is not None and step % 100 == 0:
            bar.update(100)
    if bar is not None:
        bar.close()

    extra: dict[str, Any] = {"simulation": "sgd", "lr": lr, "batch": int(batch), "seed": seed,
                             "t_end": t_end, "gamma_a": None if prm.beta is None else 1 - lr * prm.beta,
                             "Wa0": None if prm.beta is None else ("copy of W0" if Wa0 is None else "given"),
                             "directpred": None if directpred is None else asdict(directpred)}
    return matrix_trajectory(save_at * lr, Ws, Wps, Was, prm, sigma2=sigma2, extra_params=extra)


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", mininterval=0.5)
