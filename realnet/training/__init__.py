"""The training loop: :mod:`realnet.training.trainer` (the run: folder, resume, hooks, final
evaluation), :mod:`realnet.training.step` (one optimiser step), :mod:`realnet.training.optim`
(SGD / LARS, lr schedules), :mod:`realnet.training.runtime` (device and numerics),
:mod:`realnet.training.checkpoint`, :mod:`realnet.training.distributed` (torchrun),
:mod:`realnet.training.progress`, :mod:`realnet.training.tblog` (TensorBoard) and
:mod:`realnet.training.parts` (the Python API's own data and trunk)."""
