"""A run's configuration: :mod:`realnet.config.train_config` (:class:`realnet.config.train_config.TrainConfig`, loading TOML
with ``base`` inheritance and ``key=value`` overrides, diffs, the inert keys of a run),
:mod:`realnet.config.sections` (one dataclass per TOML table, each key with its default and
allowed range) and :mod:`realnet.config.ranges` (how a key declares its range; the one refusal
message). A config is validated once, when it is loaded."""
