"""The sweep file (TOML) of :mod:`realnet.sweeps`: its structure, parsed into :class:`SweepSpec`
(tables of settings, seeds, fixed overrides, the paper's numbers per cell) and checked key by key
before anything is planned. The format is documented in :mod:`realnet.sweeps`."""
from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from analysis.errors import ConfigError

__all__ = ["Setting", "TableSpec", "SweepSpec", "override_strings", "sweep_from_dict", "load_sweep"]

_TOP_KEYS = {"name", "base", "seeds", "overrides", "tables", "description"}
_TABLE_KEYS = {"name", "title", "rows", "cols", "grid", "settings", "note", "paper"}
_SETTING_KEYS = {"label", "overrides", "paper"}


# ---------------------------------------------------------------------------------------------
# the sweep file
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One cell of a table: its ``label`` ({row key: value[, col key: value]} or {"setting":
    name}), the ``overrides`` (``key=value`` strings) that make it and, optionally, the paper's
    number for the same setting (``paper``), whose ordering :mod:`realnet.sweeps.tables` checks."""

    label: dict[str, Any]
    overrides: tuple[str, ...]
    paper: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """A paper-style table: ``rows`` (and optionally ``cols``) are the label keys of its
    settings; ``settings`` in row-major order."""

    name: str
    title: str
    rows: str
    cols: str | None
    settings: tuple[Setting, ...]
    note: str = ""


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file. ``base``: a shipped realnet config name or an absolute TOML path."""

    name: str
    base: str
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    tables: tuple[TableSpec, ...]
    description: str = ""


def _flatten(table: Any, where: str, prefix: str = "") -> dict[str, Any]:
    """``{"predictor": {"freq": 2}}`` (bare dotted TOML keys) or ``{"predictor.freq": 2}``
    (quoted keys) -> ``{"predictor.freq": 2}``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of dotted keys, got {table!r}")
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(_flatten(v, where, key + "."))
        else:
            out[key] = v
    return out


def _format_value(v: Any, key: str) -> str:
    """A TOML value as realnet override text (lists become comma-separated tuples)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return repr(v) if isinstance(v, float) else str(v)
    if isinstance(v, list) and all(isinstance(x, (int, float, str, bool)) and
                                   not isinstance(x, list) for x in v):
        return ",".join(_format_value(x, key) for x in v)
    raise ConfigError(f"{key}={v!r}: unsupported value (allowed a number, string, bool or a flat "
                     "list)")


def override_strings(table: dict[str, Any], where: str) -> tuple[str, ...]:
    """``key=value`` strings of a (possibly nested) TOML table of overrides; ``seed`` is refused
    (seeds come from the sweep's ``seeds``)."""
    flat = _flatten(table, where)
    if "seed" in flat:
        raise ConfigError(f"{where}: 'seed' may not be set here; list the seeds in the sweep's "
                         "top-level 'seeds'")
    return tuple(f"{k}={_format_value(v, k)}" for k, v in flat.items())


def _unknown_keys(found: set[str], allowed: set[str], where: str) -> None:
    bad = sorted(found - allowed)
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, bad))} (allowed: "
                         f"{', '.join(sorted(allowed))})")


def _grid_settings(grid: dict[str, Any], rows: str | None, cols: str | None,
                   where: str) -> tuple[tuple[Setting, ...], str, str | None]:
    flat = _flatten(grid, where + ".grid")
    if not flat:
        raise ConfigError(f"{where}.grid: empty; give at least one key with a list of values")
    if "seed" in flat:
        raise ConfigError(f"{where}.grid: 'seed' may not be a grid key; list the seeds in the "
                         "sweep's top-level 'seeds'")
    for k, v in flat.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{where}.grid.{k}: expected a non-empty list of values, got {v!r}")
        if len({json.dumps(x) for x in v}) != len(v):
            raise ConfigError(f"{where}.grid.{k}: repeated values in {v!r}")
    keys = list(flat)
    rows = rows if rows is not None else keys[0]
    if cols is None and len(keys) == 2:
        cols = next(k for k in keys if k != rows)
    for name, key in (("rows", rows), ("cols", cols)):
        if key is not None and key not in flat:
            raise ConfigError(f"{where}.{name}={key!r} is not a grid key (grid keys: "
                             f"{', '.join(keys)})")
    if len(keys) > (2 if cols is not None else 1) or (cols is not None and cols == rows):
        raise ConfigError(f"{where}: a table shows at most two grid keys (rows and cols); got "
                         f"{', '.join(keys)} with rows={rows!r}, cols={cols!r}")
    order = [rows] + ([cols] if cols is not None else [])
    settings = []
    for values in itertools.product(*(flat[k] for k in order)):
        label = dict(zip(order, values))
        settings.append(Setting(label, override_strings(label, f"{where}.grid")))
    return tuple(settings), rows, cols


def _named_settings(items: Any, where: str) -> tuple[Setting, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}.settings: expected a non-empty array of tables "
                         "([[tables.settings]] with label and overrides)")
    out, seen = [], set()
    for i, item in enumerate(items):
        w = f"{where}.settings[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{w}: expected a table with label and overrides, got {item!r}")
        _unknown_keys(set(item), _SETTING_KEYS, w)
        label = item.get("label")
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{w}.label: expected a non-empty string, got {label!r}")
        if label in seen:
            raise ConfigError(f"{w}.label={label!r}: used twice in this table")
        seen.add(label)
        out.append(Setting({"setting": label}, override_strings(item.get("overrides", {}),
                                                                 f"{w}.overrides"),
                           _paper_value(item.get("paper"), f"{w}.paper")))
    return tuple(out)


def _table(data: Any, i: int) -> TableSpec:
    where = f"tables[{i}]"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    _unknown_keys(set(data), _TABLE_KEYS, where)
    name = data.get("name", f"table{i}")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{where}.name={name!r}: expected letters, digits, '_' or '-'")
    has_grid, has_settings = "grid" in data, "settings" in data
    if has_grid == has_settings:
        raise ConfigError(f"{where} ({name}): give exactly one of 'grid' and 'settings'")
    for key in ("rows", "cols", "title", "note"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{where}.{key}: expected a string, got {data[key]!r}")
    if has_grid:
        settings, rows, cols = _grid_settings(data["grid"], data.get("rows"), data.get("cols"),
                                              where)
    else:
        if "rows" in data or "cols" in data:
            raise ConfigError(f"{where}: 'rows'/'cols' apply to a grid; a settings table has one "
                             "row per setting label")
        settings, rows, cols = _named_settings(data["settings"], where), "setting", None
    if "paper" in data:
        if not has_grid:
            raise ConfigError(f"{where}.paper: a settings table gives 'paper' per setting")
        settings = _with_paper(settings, data["paper"], rows, cols, f"{where}.paper")
    return TableSpec(name, data.get("title", name), rows, cols, settings, data.get("note", ""))


def _paper_value(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {v!r}")
    return float(v)


def _with_paper(settings: tuple[Setting, ...], entries: Any, rows: str, cols: str | None,
                where: str) -> tuple[Setting, ...]:
    """Attach the paper's numbers of a grid table: ``paper = [[row, value], ...]`` (1-D) or
    ``[[row, col, value], ...]`` (2-D), each naming a cell of the grid."""
    n = 2 if cols is None else 3
    if not isinstance(entries, list) or any(not isinstance(e, list) or len(e) != n for e in entries):
        raise ConfigError(f"{where}: expected a list of [{'row, ' if n == 2 else 'row, col, '}"
                         f"value] entries, got {entries!r}")
    keys = [rows] + ([cols] if cols else [])
    values = {}
    for e in entries:
        cell = {k: x for k, x in zip(keys, e[:-1])}
        match = [i for i, st in enumerate(settings) if st.label == cell]
        if not match:
            raise ConfigError(f"{where}: {e!r} names no cell of the grid")
        values[match[0]] = _paper_value(e[-1], where)
    return tuple(Setting(st.label, st.overrides, values.get(i)) for i, st in enumerate(settings))


def _resolve_base(base: Any, folder: Path) -> str:
    from realnet.config.train_config import resolve_config_path

    if not isinstance(base, str) or not base:
        raise ConfigError(f"base: expected a realnet config name or TOML path, got {base!r}")
    local = folder / base
    if local.is_file():
        return str(local.resolve())
    return str(resolve_config_path(base))  # ValueError naming the shipped configs


def sweep_from_dict(data: dict[str, Any], folder: str | Path = ".") -> SweepSpec:
    """Build a :class:`SweepSpec` from a parsed sweep file (``folder``: where relative ``base``
    paths are looked up). Checks the structure only; :func:`realnet.sweeps.plan.plan_runs` checks the configs."""
    _unknown_keys(set(data), _TOP_KEYS, "sweep file")
    if "base" not in data:
        raise ConfigError("sweep file: missing 'base' (a realnet config name or TOML path)")
    base = _resolve_base(data["base"], Path(folder))
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or
            any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise ConfigError(f"seeds={seeds!r} is invalid: allowed a non-empty list of integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={seeds!r}: repeated seeds")
    tables = data.get("tables")
    if not isinstance(tables, list) or not tables:
        raise ConfigError("tables: expected at least one [[tables]] entry")
    specs = tuple(_table(t, i) for i, t in enumerate(tables))
    names = [t.name for t in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"tables: repeated table names {names}")
    name = data.get("name", "sweep")
    return SweepSpec(str(name), base, tuple(seeds),
                     override_strings(data.get("overrides", {}), "overrides"), specs,
                     str(data.get("description", "")))


def load_sweep(path: str | Path) -> SweepSpec:
    """Parse and structurally check a sweep file (ValueError naming the bad key)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(path)!r}: no such file")
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"sweep file {str(path)!r}: not valid TOML: {e}") from None
    return sweep_from_dict(data, path.parent)
