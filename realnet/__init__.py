"""Real training: ResNet BYOL / SimSiam with learned or directly-set predictors (DirectPred,
DirectCopy, ...), SimCLR and SwAV beside them, on GPU when there is one and at small scale on CPU.

Subpackages, each importing only those above it in this list (``tests/test_layers.py``):

- :mod:`realnet.config`: a run's configuration (sections, ranges, loading, overrides);
- :mod:`realnet.data`: datasets, the SSL pool and batch order, a user's own Dataset, augmentation;
- :mod:`realnet.nets`: trunks (realnet's ResNets, torchvision's, a user module), norms, the SSL model;
- :mod:`realnet.methods`: the method registry, losses, predictors, the DirectSet rule, EMA;
- :mod:`realnet.training`: one step, the loop, optimiser, runtime, checkpoints, torchrun;
- :mod:`realnet.eval`: probes, spectra snapshots, export;
- :mod:`realnet.sweeps`: grids of runs and their tables;
- :mod:`realnet.tools`: benchmarks, the numerics check, the GPU check, the lock (nothing imports them).

Where to change what:

=====================  ============================================  =======================================================
to add                 where (file: symbol)                          the test to copy
=====================  ============================================  =======================================================
a method               ``methods/registry.py``: one ``Method`` in    ``tests/test_objectives.py``:
                       ``METHODS`` (and its step loss)               ``test_a_new_method_is_one_registry_entry``
a predictor            ``methods/predictor_modules.py``: the module; ``tests/test_predictors.py``: any
                       ``methods/predictors.py``: ``PREDICTORS``     ``test_directpred_*``
                       entry (builder and knobs), knobs in
                       ``PredictorConfig``
a dataset              ``data/datasets.py``: ``DATASETS`` spec and   ``tests/test_data.py``: a loader test on a generated
                       a loader in ``_LOADERS``                      file of the format
a trunk                ``nets/backbones.py``: ``backbone_factory``   ``tests/test_models.py``
a config key           ``config/sections.py``: one ``knob(...)``     ``tests/test_config.py``
                       line (default and range)
a metric               ``analysis/metrics.py`` (the one definition)  ``tests/test_metrics.py``
a run-folder file      ``analysis/runs.py`` (names and readers)      ``tests/test_runfolder.py``
=====================  ============================================  =======================================================
"""
