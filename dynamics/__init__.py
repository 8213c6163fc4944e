"""Theory of non-contrastive SSL in the linear two-layer model (Tian, Chen & Ganguli, ICML 2021).

Per-mode dynamics (Eqns 11-13) and scalar BYOL: :mod:`dynamics.modes`; exact fixed points,
collapse threshold, invariant (Eqn 14) and basins: :mod:`dynamics.exact`; sympy derivations:
:mod:`dynamics.symbolic`; matrix gradient flow (Eqns 2-4), reduced dynamics (Eqns 7/62) and SGD
on the linear network: :mod:`dynamics.matrix`, :mod:`dynamics.reduced`, :mod:`dynamics.sgd`.
Command line: ``python -m dynamics --help``.
"""
from .exact import classify_basin, collapse_threshold, fixed_points, invariant_c
from .integrate import NonFiniteStateError
from .modes import ModeTrajectory, integrate_modes, integrate_scalar_byol

__all__ = [
    "fixed_points",
    "collapse_threshold",
    "integrate_modes",
    "integrate_scalar_byol",
    "ModeTrajectory",
    "classify_basin",
    "invariant_c",
    "NonFiniteStateError",
]

# The matrix half of the package; each guarded so that one missing module hides only its names.
try:
    from .matrix import MatrixTrajectory, integrate_matrix
except ImportError:  # pragma: no cover
    pass
else:
    __all__ += ["integrate_matrix", "MatrixTrajectory"]
try:
    from .reduced import integrate_reduced
except ImportError:  # pragma: no cover
    pass
else:
    __all__ += ["integrate_reduced"]
try:
    from .sgd import simulate_sgd
except ImportError:  # pragma: no cover
    pass
else:
    __all__ += ["simulate_sgd"]
