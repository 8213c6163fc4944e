"""Where theory and real training meet: metrics shared by every source, and comparisons of
predicted against measured spectra, alignment and collapse.

- :mod:`analysis.metrics`: the one definition of each metric (spectra, alignment, commutators,
  RankMe, participation ratio, collapsed modes, augmentation strength per mode, Wang & Isola
  alignment / uniformity). A leaf module: ``dynamics`` and ``realnet`` import it.
- :mod:`analysis.hparams`: a run config's optimiser settings -> ``alpha_p, beta, eta``, time.
- :mod:`analysis.runs`: a run folder read as data.
- :mod:`analysis.predict`: per-mode fixed points predicted by the theory (uses ``dynamics``).
- :mod:`analysis.collapse`: collapse onset and the first modes to go.
- :mod:`analysis.compare`, :mod:`analysis.report`, :mod:`analysis.plots`: the
  ``python -m analysis compare|report`` commands.

- :mod:`analysis.errors`: :class:`analysis.errors.ConfigError` (what the user got wrong) and how
  the command lines report errors.

Nothing is imported here: ``import analysis.errors`` loads that module alone, and each module
loads only what it uses.
"""
