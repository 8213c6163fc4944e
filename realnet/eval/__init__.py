"""After (and during) training: :mod:`realnet.eval.evaluate` (kNN, linear probe, collapse rule,
``eval`` of a run folder), :mod:`realnet.eval.spectra` (the spectra snapshots the theory is
compared with) and :mod:`realnet.eval.export` (the trained trunk as a plain state dict)."""
