"""Sweeps of real runs: a sweep file (TOML; :mod:`realnet.sweeps.spec`) names a base config, a
grid of settings per table and the seeds; :mod:`realnet.sweeps.runner` launches the runs
(resumable, two at a time, or as SLURM scripts: :mod:`realnet.sweeps.launchers`) and
:mod:`realnet.sweeps.tables` aggregates them into paper-style tables.

``python -m realnet.sweeps SWEEP.toml --out DIR [--jobs N]``; ``python -m realnet.sweeps.tables DIR``.
"""
