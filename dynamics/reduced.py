"""Reduced dynamics on ``(F, Wp)`` with a fixed ``tau`` (Section 3; assumptions A1, A2).

Symmetrised predictor (A3, Eqns 7/67):

```
dWp/dt = -(alpha_p/2)(1+sigma2) {Wp, F} + alpha_p tau F - eta Wp
dF/dt  = -(1+sigma2) {Wp^2, F} + tau {Wp, F} - 2 eta F
```

Unsymmetrised (Eqn 62):

```
dWp/dt = -alpha_p (1+sigma2) Wp F + alpha_p tau F - eta Wp
dF/dt  = -(1+sigma2)(Wp^T Wp F + F Wp^T Wp) + tau (Wp^T F + F Wp) - 2 eta F
```

Both are exact images of the matrix flow (:mod:`dynamics.matrix`) with ``X = I``,
``X' = sigma2 I``, ``F = W W^T`` and ``Wa = tau W`` (SimSiam: ``tau = 1``); Eqn 7 of the flow
with ``symmetric_wp=True``. Each symmetric term is evaluated as ``M + M^T`` so that ``F`` (and
``Wp`` under A3) stay exactly symmetric in floating point.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._validate import check_finite, check_nonnegative, check_positive, check_psd, check_shape, \
    check_symmetric
from .integrate import FIXED_STEP_METHODS, integrate
from .matrix import StateLayout, check_solver
from .observables import ReducedTrajectory, compute_observables

__all__ = ["reduced_flow_symmetric", "reduced_flow_unsymmetrised", "reduced_rhs",
           "integrate_reduced"]


def reduced_flow_symmetric(F: np.ndarray, Wp: np.ndarray, *, alpha_p: float, eta: float,
                           sigma2: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """``(dF/dt, dWp/dt)`` of Eqn 7 (symmetric ``F`` and ``Wp``)."""
    M = Wp @ F                      # {Wp, F} = M + M^T
    anti_WpF = M + M.T
    M2 = Wp @ M                     # {Wp^2, F} = M2 + M2^T
    dF = -(1.0 + sigma2) * (M2 + M2.T) + tau * anti_WpF - 2.0 * eta * F
    dWp = -0.5 * alpha_p * (1.0 + sigma2) * anti_WpF + alpha_p * tau * F - eta * Wp
    return dF, dWp


def reduced_flow_unsymmetrised(F: np.ndarray, Wp: np.ndarray, *, alpha_p: float, eta: float,
                               sigma2: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """``(dF/dt, dWp/dt)`` of Eqn 62 (general ``Wp``, symmetric ``F``)."""
    M = (Wp.T @ Wp) @ F             # Wp^T Wp F + F Wp^T Wp = M + M^T
    N = F @ Wp                      # Wp^T F + F Wp = N^T + N
    dF = -(1.0 + sigma2) * (M + M.T) + tau * (N + N.T) - 2.0 * eta * F
    dWp = -alpha_p * (1.0 + sigma2) * (Wp @ F) + alpha_p * tau * F - eta * Wp
    return dF, dWp


def reduced_rhs(layout: StateLayout, *, symmetric: bool, **hyper: float
                ) -> Callable[[float, np.ndarray], np.ndarray]:
    """``rhs(t, y)`` on the state ``(F, Wp)`` packed by ``layout``."""
    flow = reduced_flow_symmetric if symmetric else reduced_flow_unsymmetrised

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        F, Wp = layout.unpack(y)
        return layout.pack(*flow(F, Wp, **hyper))

    return rhs


def integrate_reduced(F0, Wp0, *, alpha_p: float, eta: float, sigma2: float, tau: float = 1.0,
                      symmetric: bool = True, t_end: float, solver: str = "rk4", dt: float = 0.01,
                      n_save: int = 201, progress: bool = False) -> ReducedTrajectory:
    """Integrate Eqn 7 (``symmetric=True``; ``Wp0`` must be symmetric) or Eqn 62 with fixed
    ``tau`` from ``(F0, Wp0)``; ``F0`` symmetric PSD (n x n), ``Wp0`` (n x n). Observables as for
    the matrix flow, with ``W W^T = F`` (A2); ``wa_correlation`` is undefined (None)."""
    F0 = check_psd("F0", F0)
    n = F0.shape[0]
    Wp0 = check_shape("Wp0", Wp0, (n, n))
    if symmetric:
        check_symmetric("Wp0", Wp0)
    hyper = {"alpha_p": float(check_positive("alpha_p", alpha_p)),
             "eta": float(check_nonnegative("eta", eta)),
             "sigma2": float(check_nonnegative("sigma2", sigma2)),
             "tau": float(check_finite("tau", tau))}
    check_solver(solver)
    layout = StateLayout(("F", "Wp"), ((n, n), (n, n)))
    t, Y = integrate(reduced_rhs(layout, symmetric=symmetric, **hyper), layout.pack(F0, Wp0), t_end,
                     method=solver, dt=dt, n_save=n_save, names=layout.name_of, progress=progress)
    F, Wp = layout.unpack(Y)
    obs = compute_observables(t, F, Wp, F, alpha_p=hyper["alpha_p"], eta=hyper["eta"],
                              sigma2=hyper["sigma2"], tau=np.full(len(t), hyper["tau"]))
    params: dict[str, Any] = {"equation": "Eqn 7" if symmetric else "Eqn 62", "n": n, **hyper,
                              "solver": solver, "t_end": t_end,
                              "dt": dt if solver in FIXED_STEP_METHODS else None}
    return ReducedTrajectory(t=t, obs=obs, params=params, F=F, Wp=Wp)
