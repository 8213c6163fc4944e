"""Run level, for a trained linear predictor: does ``Wp`` keep aligning with ``F`` after the
cutoff (the paper's Theorem 3, Eqn 17)? :func:`eqn17_modes` evaluates the condition per alive mode
at a cutoff (:class:`analysis.cutoff.CutoffState`), :func:`alignment_rows` scores it as a
forecast against its baselines (:mod:`analysis.scorecard`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from dynamics.exact import fixed_point_branches

from .cutoff import CutoffState, Measured

__all__ = ["eqn17_modes", "eqn17_aligns", "alignment_rows"]


def eqn17_modes(cut: CutoffState) -> np.ndarray | None:
    """Per alive mode at the cutoff, whether Eqn 17 holds, for a trained linear predictor:
    ``Delta_j < (alpha_p (1 + sigma2_j) s_j + eta) / 2`` with ``Delta_j = p_j [tau - (1 +
    sigma2_j) p_j] - eta``, ``tau = 1`` (SimSiam, or BYOL's EMA at its fixed point) and ``eta``
    the predictor's weight decay (``predictor.weight_decay``; the global one when unset). Units
    as in :func:`analysis.forecasters.l2_modes`: ``p`` scaled so that the top mode's ``p`` is its ``p*_+`` (Eqn 16),
    ``s`` so that the top mode sits on the parabola ``s = p^2 / alpha_p`` (Eqn 14 with ``c = 0``).
    None when the run has no trained linear predictor."""
    if cut.predictor != "linear" or cut.p is None:
        return None
    eta = cut.hp.eta_p
    lam = 1.0 + cut.sigma2_filled
    _, p_plus = fixed_point_branches(1.0, eta, cut.sigma2_filled)
    p = cut.p * (p_plus[0] / cut.p[0]) if cut.p[0] > 0 and np.isfinite(p_plus[0]) else cut.p
    s = cut.s * (p[0] ** 2 / cut.hp.alpha_p) / cut.s[0] if cut.s[0] > 0 else cut.s
    delta = p * (1.0 - lam * p) - eta
    ok = delta < 0.5 * (cut.hp.alpha_p * lam * s + eta)
    return ok[cut.alive]


def eqn17_aligns(cut: CutoffState) -> bool | None:
    """Eqn 17 at the cutoff (:func:`eqn17_modes`): ``[F, Wp]`` keeps decaying iff it holds for
    every mode alive at the cutoff. None when the run has no trained linear predictor."""
    ok = eqn17_modes(cut)
    return None if ok is None else bool(np.all(ok))


def alignment_rows(cut: CutoffState, meas: Measured) -> list[dict[str, Any]]:
    """Run-level forecasts of whether the relative commutator ``||[F, Wp]|| / (||F|| ||Wp||)``
    is lower at the end than at the cutoff: Eqn 17 (:func:`eqn17_aligns`) against the baselines
    ``always_aligns`` and ``persistence`` (the change over the window before the cutoff goes on)."""
    pred = eqn17_aligns(cut)
    at = (cut.commutator_prev, cut.commutator, meas.commutator_final)
    if pred is None or any(v is None for v in at):
        return []
    prev, now, final = at
    measured = final < now
    forecasts = {"eqn17": pred, "always_aligns": True, "persistence": now < prev}
    return [{"forecaster": name, "kind": "theory" if name == "eqn17" else "baseline",
             "aligns_pred": p, "aligns_meas": bool(measured), "right": p == measured,
             "commutator_cutoff": float(now), "commutator_final": float(final)}
            for name, p in forecasts.items()]
