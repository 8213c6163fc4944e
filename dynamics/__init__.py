"""Theory of non-contrastive SSL in the linear two-layer model (Tian, Chen & Ganguli, ICML 2021).

Per-mode dynamics (Eqns 11-13) and scalar BYOL: :mod:`dynamics.modes`; exact fixed points,
collapse threshold, invariant (Eqn 14) and basins: :mod:`dynamics.exact`; sympy derivations:
:mod:`dynamics.symbolic`; matrix gradient flow (Eqns 2-4), reduced dynamics (Eqns 7/62) and SGD
on the linear network: :mod:`dynamics.matrix`, :mod:`dynamics.reduced`, :mod:`dynamics.sgd`.
Command line: ``python -m dynamics --help``.
"""
from importlib import import_module

#: Public name -> the module that defines it; each loads on first use (``import dynamics`` alone
#: loads nothing else, and a broken module fails loudly when its name is used).
_HOMES = {
    "fixed_points": "exact", "collapse_threshold": "exact", "classify_basin": "exact",
    "invariant_c": "exact", "NonFiniteStateError": "integrate", "integrate_modes": "modes",
    "integrate_scalar_byol": "modes", "ModeTrajectory": "modes", "integrate_matrix": "matrix",
    "MatrixTrajectory": "matrix", "integrate_reduced": "reduced", "simulate_sgd": "sgd",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'dynamics' has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
