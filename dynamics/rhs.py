"""Right-hand sides of the per-mode dynamics (Eqns 11-13) and of scalar BYOL (Section 3):
plain arithmetic on floats or arrays, shared by the numpy integrators (:mod:`dynamics.modes`) and
the compiled kernels (:mod:`dynamics._kernels`)."""
from __future__ import annotations

import numpy as np

__all__ = ["MODE_VARIABLES", "LAMBDA_D", "mode_rhs", "scalar_byol_rhs"]

MODE_VARIABLES = ("p", "s", "tau")
#: lambda_d of the scalar BYOL system in the isotropic case (Section 3).
LAMBDA_D = 1.0


def _mode_derivs(p, s, tau, alpha_p, eta, lam_s):
    """Eqns 11-12 with ``lam_s = 1 + sigma2``. Returns ``(dp, ds, r)`` with
    ``r = (ds/dt) / (2 s) = p (tau - lam_s p) - eta``. Plain arithmetic on floats or arrays:
    the compiled kernels call this very function."""
    g = tau - lam_s * p
    r = p * g - eta
    return alpha_p * s * g - eta * p, 2.0 * s * r, r


def _ema_rate(tau, r, beta):
    """Eqn 13 with ``(ds/dt)/(2 s)`` replaced by ``r`` (see :func:`_mode_derivs`)."""
    return beta * (1.0 - tau) - tau * r


def mode_rhs(p, s, tau, *, alpha_p, eta, sigma2, beta=None):
    """Right-hand side of Eqns 11-13 for one mode or any broadcastable batch.

    Returns ``(dp/dt, ds/dt, dtau/dt)``; ``dtau/dt`` is 0 when ``beta`` is None (fixed tau).
    """
    dp, ds, r = _mode_derivs(p, s, tau, alpha_p, eta, 1.0 + np.asarray(sigma2, dtype=np.float64))
    dtau = np.zeros_like(np.asarray(dp, dtype=np.float64)) if beta is None else _ema_rate(tau, r, beta)
    return dp, ds, dtau


def scalar_byol_rhs(w_p, w, w_a, *, alpha_p, eta, sigma2, beta):
    """Scalar BYOL (n1 = n2 = 1, Section 3) with ``lambda_s = 1 + sigma2``, ``lambda_d = 1``:

    ```
    dw_p/dt = alpha_p (w_a lambda_d - w_p w lambda_s) w - eta w_p
    dw/dt   = w_p (w_a lambda_d - w_p w lambda_s) - eta w
    dw_a/dt = beta (w - w_a)
    ```
    Returns ``(dw_p/dt, dw/dt, dw_a/dt)``.
    """
    err = w_a * LAMBDA_D - w_p * w * (1.0 + sigma2)
    return alpha_p * err * w - eta * w_p, w_p * err - eta * w, beta * (w - w_a)
