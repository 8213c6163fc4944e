"""Matrix gradient flow of the linear two-layer model (Lemma 1, Eqns 2-4).

With ``G = Wa X - Wp W (X + X')`` (minus the gradient of the loss of Eqn 1 with respect to the
predictor output ``Wp W``, in expectation over the views):

```
dWp/dt = alpha_p G W^T - eta Wp                       (Eqn 2)
dW/dt  = Wp^T G        - eta W                        (Eqn 3)
dWa/dt = beta (W - Wa)                                (Eqn 4)
```

Variants (each a flag of :func:`integrate_matrix`, all composable unless noted):

- **BYOL** (``beta`` given): ``Wa`` follows the EMA of Eqn 4. ``Wa0`` defaults to a *copy of*
  ``W0`` (tau(0) = 1), as BYOL initialises its target; pass ``Wa0=np.zeros_like(W0)`` for the
  paper's Fig. 7 setting ``Wa(0) = 0``.
- **SimSiam** (``beta=None``): ``Wa = W`` with the stop-gradient kept; no ``Wa`` equation.
- **Symmetrised predictor** (``symmetric_wp=True``, assumption A3): ``dWp/dt = alpha_p sym(G W^T)
  - eta Wp``; ``Wp0`` must be symmetric, and ``Wp`` stays exactly symmetric.
- **No stop-gradient** (``stop_grad=False``, Theorem 2; needs ``beta=None``, i.e. ``Wa = W``):
  the loss ``J = 1/2 E||Wp W x1 - W x2||^2`` is differentiated through both branches. Writing
  ``r = Wp W x1 - W x2``, ``dJ/dW = Wp^T E[r x1^T] - E[r x2^T]`` with
  ``E[r x1^T] = Wp W (X+X') - W X = -G`` and ``E[r x2^T] = Wp W X - W (X+X')``, so

  ``dW/dt = Wp^T G + Wp W X - W (X + X') - eta W``.

  Expanding, this is ``-(Wp^T Wp + I) W X' - (Wp - I)^T (Wp - I) W X - eta W``, i.e.
  ``d vec(W)/dt = -H vec(W)`` with ``H`` of Theorem 2. ``dWp/dt`` is unchanged (``Wp`` sits
  only on the online branch).
- **No predictor** (``predictor=False``): ``Wp`` is not trained and stays at ``Wp0`` (default the
  identity, the paper's "no predictor"); with ``Wa = W`` this gives ``dW/dt = -W (X' + eta I)``.

The state is packed into one flat float64 vector (``W``, then ``Wp`` if trained, then ``Wa`` if
EMA); :class:`StateLayout` names its entries for :class:`~dynamics.integrate.NonFiniteStateError`.
Observables are computed at the saved points only (:mod:`dynamics.observables`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .linalg import sym

from ._validate import (check_finite, check_nonnegative, check_positive, check_psd, check_shape,
                        check_symmetric)
from .integrate import FIXED_STEP_METHODS, integrate
from .observables import MatrixTrajectory, compute_observables, estimate_sigma2, estimate_tau

__all__ = [
    "MatrixTrajectory",
    "MatrixParams",
    "StateLayout",
    "matrix_flow",
    "matrix_rhs",
    "prepare_matrix_problem",
    "matrix_trajectory",
    "integrate_matrix",
    "initial_weights",
    "isotropic_data",
    "SOLVERS",
]

#: Accepted ``solver`` names: the fixed-step schemes and the methods of scipy's ``solve_ivp``.
SOLVERS = FIXED_STEP_METHODS + ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


@dataclass(frozen=True, eq=False)
class MatrixParams:
    """Everything the right-hand side needs besides the state. ``XXp = X + X'`` is cached.
    ``Wp_fixed`` is the predictor when it is not trained (``predictor=False``)."""

    X: np.ndarray
    Xp: np.ndarray
    alpha_p: float = 1.0
    eta: float = 0.0
    beta: float | None = None
    stop_grad: bool = True
    predictor: bool = True
    symmetric_wp: bool = False
    Wp_fixed: np.ndarray | None = None
    XXp: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "XXp", self.X + self.Xp)

    @property
    def method(self) -> str:
        return "SimSiam" if self.beta is None else "BYOL"


def matrix_flow(W: np.ndarray, Wp: np.ndarray, Wa: np.ndarray | None, prm: MatrixParams
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(dW/dt, dWp/dt, dWa/dt)`` of Eqns 2-4 and their variants (module docstring). ``Wa`` is
    ignored for SimSiam (``Wa = W``); the ``dWp`` entry is None when the predictor is fixed and
    the ``dWa`` entry None for SimSiam."""
    target = W if prm.beta is None else Wa
    WpW = Wp @ W
    G = target @ prm.X - WpW @ prm.XXp
    dW = Wp.T @ G - prm.eta * W
    if not prm.stop_grad:  # Theorem 2: gradient through the target branch too (Wa = W)
        dW += WpW @ prm.X - W @ prm.XXp
    dWp = None
    if prm.predictor:
        GWt = G @ W.T
        dWp = prm.alpha_p * (sym(GWt) if prm.symmetric_wp else GWt) - prm.eta * Wp
    dWa = None if prm.beta is None else prm.beta * (W - Wa)
    return dW, dWp, dWa


@dataclass(frozen=True)
class StateLayout:
    """Packing of named matrices into one flat vector, in the order given."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, int], ...]
    offsets: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets",
                           tuple(int(o) for o in np.cumsum([0] + [r * c for r, c in self.shapes])))

    def pack(self, *arrays: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])

    def unpack(self, y: np.ndarray) -> list[np.ndarray]:
        """Views into ``y`` (flat state or time-first stack of flat states)."""
        off = self.offsets
        lead = y.shape[:-1]
        return [y[..., off[k]:off[k + 1]].reshape(lead + shape)
                for k, shape in enumerate(self.shapes)]

    def name_of(self, index: tuple[int, ...]) -> str:
        """``"W[i,j]"`` for a flat index (the ``names`` callable of ``integrate``)."""
        i = int(index[-1]) if index else 0
        off = self.offsets
        k = int(np.searchsorted(off, i, side="right")) - 1
        r, c = divmod(i - off[k], self.shapes[k][1])
        return f"{self.names[k]}[{r},{c}]"


def matrix_rhs(layout: StateLayout, prm: MatrixParams) -> Callable[[float, np.ndarray], np.ndarray]:
    """Right-hand side ``rhs(t, y)`` on the packed state of ``layout`` (Eqns 2-4)."""
    trained_wp = prm.predictor
    with_wa = prm.beta is not None

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        parts = layout.unpack(y)
        W = parts[0]
        Wp = parts[1] if trained_wp else prm.Wp_fixed
        Wa = parts[-1] if with_wa else None
        dW, dWp, dWa = matrix_flow(W, Wp, Wa, prm)
        return layout.pack(dW, *(() if dWp is None else (dWp,)), *(() if dWa is None else (dWa,)))

    return rhs


def prepare_matrix_problem(W0, Wp0, *, X, Xp, alpha_p: float, eta: float, beta: float | None,
                           Wa0, stop_grad: bool, predictor: bool, symmetric_wp: bool
                           ) -> tuple[MatrixParams, np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate the inputs shared by the matrix ODE and the SGD simulation; return
    ``(params, W0, Wp0, Wa0)`` as float64 arrays (``Wp0`` the fixed predictor when
    ``predictor=False``; ``Wa0`` None for SimSiam). Every failure is a ValueError naming the
    argument."""
    X = check_psd("X", X)
    Xp = check_psd("Xp", Xp)
    n1 = X.shape[0]
    check_shape("Xp", Xp, X.shape)
    W0 = check_finite("W0", W0)
    if W0.ndim != 2:
        raise ValueError(f"W0: must be an (n2, n1) matrix, got shape {W0.shape}")
    n2 = W0.shape[0]
    check_shape("W0", W0, (n2, n1))
    alpha_p = float(check_positive("alpha_p", alpha_p))
    eta = float(check_nonnegative("eta", eta))
    if beta is not None:
        beta = float(check_positive("beta", beta))
    if not stop_grad and beta is not None:
        raise ValueError("beta: must be None when stop_grad=False (Theorem 2 sets Wa = W; an EMA "
                         "target receives no gradient)")
    if Wp0 is None:
        if predictor:
            raise ValueError("Wp0: required when predictor=True")
        Wp0 = np.eye(n2)
    Wp0 = check_shape("Wp0", Wp0, (n2, n2))
    if symmetric_wp:
        if not predictor:
            raise ValueError("symmetric_wp: needs predictor=True (a fixed predictor has no flow "
                             "to symmetrise)")
        check_symmetric("Wp0", Wp0)
    if beta is None:
        if Wa0 is not None:
            raise ValueError("Wa0: only used with an EMA target (beta given); SimSiam has Wa = W")
    else:
        Wa0 = W0.copy() if Wa0 is None else check_shape("Wa0", Wa0, (n2, n1))
    prm = MatrixParams(X=X, Xp=Xp, alpha_p=alpha_p, eta=eta, beta=beta, stop_grad=bool(stop_grad),
                       predictor=bool(predictor), symmetric_wp=bool(symmetric_wp),
                       Wp_fixed=None if predictor else Wp0.copy())
    return prm, W0.copy(), Wp0.copy(), Wa0


def matrix_trajectory(t: np.ndarray, W: np.ndarray, Wp: np.ndarray, Wa: np.ndarray | None,
                      prm: MatrixParams, *, sigma2: float | None = None,
                      extra_params: dict[str, Any] | None = None) -> MatrixTrajectory:
    """Assemble a :class:`MatrixTrajectory` from saved states (time first) and compute its
    observables. ``Wa=None`` means SimSiam (``Wa = W``, tau = 1). ``sigma2`` (for ``K``, Eqn 9)
    defaults to ``tr(X')/tr(X)``; ``tau`` is estimated as ``<Wa, W>/||W||^2`` (A1)."""
    if sigma2 is None:
        sigma2 = estimate_sigma2(prm.X, prm.Xp)
    Wa = W if Wa is None else Wa
    tau = np.ones(len(t)) if prm.beta is None else estimate_tau(W, Wa)
    F = W @ prm.X @ np.swapaxes(W, -1, -2)
    WWt = W @ np.swapaxes(W, -1, -2)
    obs = compute_observables(t, F, Wp, WWt, alpha_p=prm.alpha_p, eta=prm.eta, sigma2=sigma2,
                              tau=tau, W=W, Wa=Wa)
    params = {"method": prm.method, "n1": W.shape[-1], "n2": W.shape[-2], "alpha_p": prm.alpha_p,
              "eta": prm.eta, "beta": prm.beta, "sigma2_for_K": sigma2,
              "stop_grad": prm.stop_grad, "predictor": prm.predictor,
              "symmetric_wp": prm.symmetric_wp, **(extra_params or {})}
    return MatrixTrajectory(t=np.asarray(t, dtype=np.float64), obs=obs, params=params,
                            W=W, Wp=Wp, Wa=Wa)


def check_solver(solver: str) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver: must be one of {', '.join(SOLVERS)}, got {solver!r}")
    return solver


def integrate_matrix(W0, Wp0, *, X, Xp, alpha_p: float = 1.0, eta: float = 0.0,
                     beta: float | None = None, Wa0=None, stop_grad: bool = True,
                     predictor: bool = True, symmetric_wp: bool = False, t_end: float,
                     solver: str = "rk4", dt: float = 0.01, n_save: int = 201,
                     sigma2: float | None = None, progress: bool = False) -> MatrixTrajectory:
    """Integrate the matrix gradient flow (Lemma 1, Eqns 2-4) from ``(W0, Wp0[, Wa0])``.

    ``W0`` is (n2, n1), ``Wp0`` (n2, n2) (may be None with ``predictor=False``: identity),
    ``X``/``Xp`` (n1, n1) symmetric PSD. ``beta=None`` is SimSiam (``Wa = W``); a positive
    ``beta`` is BYOL with ``Wa0`` defaulting to a copy of ``W0``. ``solver`` is ``"euler"``
    (the paper's discrete dynamics; with ``dt`` = learning rate it is full-batch gradient
    descent), ``"rk4"`` or a ``solve_ivp`` method (adaptive; ``dt`` unused). ``n_save`` points
    are saved, from 0 to ``t_end``. ``sigma2`` only enters the observable ``lambda_min(K)``
    (Eqn 9; default ``tr(X')/tr(X)``)."""
    wa0_policy = None if beta is None else ("copy of W0" if Wa0 is None else "given")
    prm, W0, Wp0, Wa0 = prepare_matrix_problem(
        W0, Wp0, X=X, Xp=Xp, alpha_p=alpha_p, eta=eta, beta=beta, Wa0=Wa0, stop_grad=stop_grad,
        predictor=predictor, symmetric_wp=symmetric_wp)
    check_solver(solver)
    if sigma2 is not None:
        sigma2 = float(check_nonnegative("sigma2", sigma2))
    n2, n1 = W0.shape
    names, shapes, init = ["W"], [(n2, n1)], [W0]
    if prm.predictor:
        names, shapes, init = names + ["Wp"], shapes + [(n2, n2)], init + [Wp0]
    if prm.beta is not None:
        names, shapes, init = names + ["Wa"], shapes + [(n2, n1)], init + [Wa0]
    layout = StateLayout(tuple(names), tuple(shapes))
    t, Y = integrate(matrix_rhs(layout, prm), layout.pack(*init), t_end, method=solver, dt=dt,
                     n_save=n_save, names=layout.name_of, progress=progress)
    parts = dict(zip(names, layout.unpack(Y)))
    Wp = parts["Wp"] if prm.predictor else np.repeat(Wp0[None], len(t), axis=0)
    return matrix_trajectory(
        t, parts["W"], Wp, parts.get("Wa"), prm, sigma2=sigma2,
        extra_params={"solver": solver, "dt": dt if solver in FIXED_STEP_METHODS else None,
                      "t_end": t_end, "Wa0": wa0_policy})


# --------------------------------------------------------------------------- initial state
def initial_weights(n1: int, n2: int, *, seed: int, w_std: float | None = None,
                    wp_std: float | None = None, symmetric_wp: bool = False,
                    predictor: bool = True, wa0_zeros: bool = False
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(W0, Wp0, Wa0)`` drawn from the stream ``[seed, 1]`` (the SGD simulation samples its
    data from ``seed`` itself, so the two never share random numbers): Gaussian entries of std
    ``w_std`` / ``wp_std`` (default ``1/sqrt(n1)`` / ``1/sqrt(n2)``); ``Wp0`` symmetrised with
    ``symmetric_wp``, None without a predictor (the identity); ``Wa0`` zeros when ``wa0_zeros``
    (the paper's Fig. 7), else None (a copy of ``W0``)."""
    for name, v in (("n1", n1), ("n2", n2)):
        if v < 1:
            raise ValueError(f"{name}: must be >= 1, got {v}")
    rng = np.random.default_rng([seed, 1])
    w_std = 1.0 / np.sqrt(n1) if w_std is None else w_std
    wp_std = 1.0 / np.sqrt(n2) if wp_std is None else wp_std
    check_nonnegative("w_std", w_std)
    check_nonnegative("wp_std", wp_std)
    W0 = w_std * rng.standard_normal((n2, n1))
    Wp0 = wp_std * rng.standard_normal((n2, n2))
    if symmetric_wp:
        Wp0 = sym(Wp0)
    return W0, (Wp0 if predictor else None), (np.zeros_like(W0) if wa0_zeros else None)


def isotropic_data(n1: int, sigma2: float) -> tuple[np.ndarray, np.ndarray]:
    """``X = I``, ``X' = sigma2 I`` (assumption A2)."""
    check_nonnegative("sigma2", sigma2)
    return np.eye(n1), sigma2 * np.eye(n1)
