"""Tools around training, not part of a run: the speed benchmarks (``python -m realnet.tools.bench``,
``--cpu`` for the CPU table), the conventional DataLoader pipeline they compare against
(:mod:`realnet.tools.baseline`), the fast-path numerics check (``python -m
realnet.tools.numerics``) and the one-shot GPU check (``python -m realnet.tools.gpucheck``)."""
