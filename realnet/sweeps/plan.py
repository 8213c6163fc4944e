"""A sweep's plan: every table cell x seed resolved to a realnet config and deduplicated into the
runs to launch (:func:`plan_runs`), each in a folder named by its setting (:func:`setting_folder_name`)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from analysis.errors import ConfigError
from realnet.sweeps.spec import SweepSpec

__all__ = ["PlannedRun", "plan_runs", "setting_folder_name"]


@dataclass
class PlannedRun:
    """One training run: ``folder`` relative to the sweep's output, the realnet ``overrides``
    (fixed + setting + seed), the resolved ``config`` (plain data) and the table cells that use
    it (``uses``: (table name, setting index))."""

    setting: str
    seed: int
    overrides: tuple[str, ...]
    config: dict[str, Any]
    uses: list[tuple[str, int]] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return f"{self.setting}/seed{self.seed}"


def _leaf_names() -> dict[str, int]:
    from realnet.config.train_config import all_keys

    counts: dict[str, int] = {}
    for k in all_keys():
        leaf = k.split(".")[-1]
        counts[leaf] = counts.get(leaf, 0) + 1
    return counts


def _short_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return ",".join(_short_value(x) for x in v)
    return "none" if v is None else str(v)


def setting_folder_name(config: dict[str, Any], reference: dict[str, Any]) -> str:
    """Name of a setting's folder: ``key=value`` for every dotted key in which ``config``
    differs from ``reference`` (sorted; the leaf name where it is unambiguous), joined by
    ``_``; ``base`` when they are equal. Names longer than 80 characters are cut and suffixed
    with a hash of the full name."""
    diffs: list[tuple[str, Any]] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{prefix}{k}.")
        elif a != b:
            diffs.append((prefix.rstrip("."), a))

    walk(config, reference, "")
    if not diffs:
        return "base"
    leaves = _leaf_names()
    parts = []
    for key, value in diffs:
        leaf = key.split(".")[-1]
        short = leaf if leaves.get(leaf, 0) == 1 else key
        parts.append(f"{short}={_short_value(value)}")
    name = "_".join(parts)
    name = "".join(c if c.isalnum() or c in "._=+-," else "-" for c in name)
    if len(name) > 80:
        name = name[:64] + "-" + hashlib.sha1(name.encode()).hexdigest()[:10]
    return name


def _canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def plan_runs(spec: SweepSpec) -> list[PlannedRun]:
    """Resolve every (table, setting, seed) with :func:`realnet.config.train_config.load_config` and merge
    identical resolved configs into one run. Raises ValueError naming the table, the setting and
    the bad key before anything runs."""
    from realnet.config.train_config import config_to_dict, load_config

    try:
        reference = config_to_dict(load_config(spec.base, spec.overrides))
    except ValueError as e:
        raise ConfigError(f"overrides: {e}") from None
    ref_no_seed = {k: v for k, v in reference.items() if k != "seed"}
    runs: dict[str, PlannedRun] = {}
    names: dict[str, str] = {}  # folder name -> canonical config (without seed)
    for table in spec.tables:
        for i, setting in enumerate(table.settings):
            label = ", ".join(f"{k}={v}" for k, v in setting.label.items())
            for seed in spec.seeds:
                overrides = spec.overrides + setting.overrides + (f"seed={seed}",)
                try:
                    cfg = config_to_dict(load_config(spec.base, overrides))
                except ValueError as e:
                    raise ConfigError(f"tables.{table.name} setting ({label}): {e}") from None
                no_seed = {k: v for k, v in cfg.items() if k != "seed"}
                key = _canonical(cfg)
                if key not in runs:
                    name = setting_folder_name(no_seed, ref_no_seed)
                    canon = _canonical(no_seed)
                    if names.setdefault(name, canon) != canon:  # two configs, one name
                        name = f"{name}-{hashlib.sha1(canon.encode()).hexdigest()[:8]}"
                        names[name] = canon
                    runs[key] = PlannedRun(name, seed, overrides, cfg)
                runs[key].uses.append((table.name, i))
    return list(runs.values())


# ---------------------------------------------------------------------------------------------
# state of a run folder and launching
# ---------------------------------------------------------------------------------------------
