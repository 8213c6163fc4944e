"""Run configuration: typed nested dataclasses whose defaults are the paper's recipe
(THEORY.md section 4), loaded from TOML and overridden by ``key=value`` strings.

Defaults (THEORY.md section 4): BYOL with a constant EMA of 0.996, SGD lr 0.03 / momentum 0.9 /
weight decay 4e-4 / constant lr, batch 128, 100 epochs, a ResNet-18 trunk with the CIFAR stem, a
512-512-128 projector, the DirectPred predictor (rho 0.3, eps 0.1, freq 1) and BYOL's loss
``2 - 2 cos(p, sg(z))`` summed over the two view pairs (the paper's code's scale). One default
differs from the paper's public code: ``method.target_init_copy = true`` starts the EMA target as a
copy of the online network, as BYOL does; the paper's code initialises it separately (set it to
false to match; the shipped ``cifar10_*`` / ``stl10_*`` paper configs do).

A TOML file has top-level ``seed`` and ``device`` and one table per section::

    seed = 0
    device = "auto"            # auto | cpu | cuda | cuda:N
    [data]      dataset, root, download, ssl_limit, train_limit, test_limit, image_size, stream, workers
    [model]     arch (realnet's resnet18/34 or any torchvision model), stem, width, proj_hidden_dim, proj_dim
    [method]    name (byol|simsiam), ema, ema_schedule, target_init_copy, stop_grad, loss, symmetric
    [predictor] realnet.methods.predictors.PredictorConfig
    [optim]     realnet.training.optim.OptimConfig
    [augment]   any field of realnet.data.augment.AugmentConfig (overrides the dataset's defaults)
    [train]     epochs | steps, batch_size, bf16, channels_last, compile, threads, sync_bn
    [eval]      kNN monitor, linear probe, collapse rule
    [log]       metrics, spectra and checkpoint periods, tensorboard

A file may start from another with a top-level ``base = "NAME_OR_FILE"`` (inheritance);
``python -m realnet print-config --config NAME [key=value ...]`` prints the resolved result.

Overrides are dotted keys, ``optim.lr=0.05``, ``predictor.name=linear``,
``augment.crop_scale=0.2,1.0``; the value is parsed by the type of the field (``none``/``null``
clears an optional field, and so does ``auto``, which reads well for the tri-state
``train.bf16`` / ``train.channels_last``).
Setting ``train.steps`` by override clears ``train.epochs`` and vice versa. An unknown key is
refused with the closest known key; every value is checked by :meth:`TrainConfig.validate`
before any work starts, with a message naming the key and the allowed range.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from realnet.data.augment import AugmentConfig
from realnet.training.optim import OptimConfig
from realnet.methods.predictors import PredictorConfig
from realnet.config.ranges import Allowed, check_fields, fail, integer, knob
from realnet.methods.registry import METHODS
from analysis.errors import ConfigError
from realnet.config.sections import (EMA_SCHEDULES, DataConfig, EvalConfig, LogConfig,
                                     LoopConfig, MethodConfig, ModelConfig)

__all__ = [
    "DataConfig",
    "ModelConfig",
    "MethodConfig",
    "LoopConfig",
    "EvalConfig",
    "LogConfig",
    "TrainConfig",
    "EMA_SCHEDULES",
    "load_config",
    "apply_overrides",
    "merge_overrides",
    "config_from_dict",
    "read_run_config",
    "config_to_dict",
    "config_to_toml",
    "all_keys",
    "shipped_configs",
    "resolve_config_path",
]

@dataclass
class TrainConfig:
    """The whole run. ``augment`` holds overrides of the dataset's default augmentation
    (:func:`realnet.data.augment.default_augment`), keyed by :class:`AugmentConfig` field."""

    seed: int = knob(0, integer(0, 2**31 - 1))  # the generators' seeds are seed * 1000 + k (int64)
    device: str = knob("auto", Allowed(
        lambda v: isinstance(v, str) and (v in ("auto", "cpu", "cuda") or
                                          (v.startswith("cuda:") and v[5:].isdigit())),
        "'auto', 'cpu', 'cuda' or 'cuda:N'"))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: dict[str, Any] = field(default_factory=dict, metadata={"schema": AugmentConfig})
    train: LoopConfig = field(default_factory=LoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def validate(self) -> "TrainConfig":
        """Check every value; raise ConfigError naming the first bad key. Returns ``self``."""
        check_fields(self, "")
        for section in (self.data, self.model, self.method, self.predictor, self.optim,
                        self.train, self.eval, self.log):
            section.validate()
        hints = _schema_types(AugmentConfig)
        for k, v in self.augment.items():  # types (set programmatically) and then ranges
            _coerce(v, hints[k], f"augment.{k}")
        self.augment_config().validate()
        only = METHODS[self.method.name].only_predictor
        if only is not None and self.predictor.name != only:
            fail("predictor.name", self.predictor.name,
                 f"{only} with method.name={self.method.name} (it has no predictor)")
        if self.predictor.feature_blocks > self.model.proj_dim:
            fail("predictor.feature_blocks", self.predictor.feature_blocks,
                 f"an integer in [1, model.proj_dim={self.model.proj_dim}]")
        if self.data.ssl_limit is not None and self.data.ssl_limit < self.train.batch_size:
            fail("data.ssl_limit", self.data.ssl_limit,
                 f"at least train.batch_size={self.train.batch_size} (or none)")
        return self

    def augment_config(self, channels: int | None = None) -> AugmentConfig:
        """The dataset's default augmentation (for the API's ``torch`` data, by its ``channels``)
        with this config's overrides applied (validated by :class:`AugmentConfig` itself where it
        checks its values)."""
        from realnet.data.augment import default_augment

        return dataclasses.replace(default_augment(self.data.dataset, channels), **self.augment)


# ---------------------------------------------------------------------------------------------
# typed construction from plain data (TOML / JSON) and from override strings
# ---------------------------------------------------------------------------------------------
_NONE_WORDS = ("none", "null", "auto")


def _schema_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown(prefix: str, name: str, known: typing.Iterable[str], rest: str = "") -> ConfigError:
    """Refusal of the key ``prefix + name + rest`` whose part ``name`` is not among ``known``,
    suggesting the full key with the closest known part."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        hint = f"; did you mean {prefix + close[0] + rest!r}?"
    elif prefix:  # inside a section: its own keys are listed below, no guess from another one
        hint = ""
    else:  # a key given without its section, e.g. `lr` for `optim.lr`
        leaves = all_keys()
        last = difflib.get_close_matches((name + rest).split(".")[-1],
                                         sorted({k.split(".")[-1] for k in leaves}), n=1,
                                         cutoff=0.6)
        full = [k for k in leaves if last and k.split(".")[-1] == last[0]]
        hint = f"; did you mean {' or '.join(map(repr, full))}?" if full else ""
    where = f" under {prefix.rstrip('.')!r}" if prefix else ""
    return ConfigError(f"unknown key {prefix + name + rest!r}{hint} (known{where}: "
                      f"{', '.join(known)})")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert a plain value (from TOML/JSON) to the field type ``tp``."""
    if tp is Any:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in _NONE_WORDS
                             and type(None) in args and str not in args):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ValueError as e:
                errors.append(str(e))
        if not errors:
            fail(key, value, "a value (not none)")
        raise ConfigError(errors[0] + (" or none (auto)" if type(None) in args else ""))
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail(key, value, f"a table of {tp.__name__} keys")
        return _build(tp, value, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail(key, value, "true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        fail(key, value, "an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        fail(key, value, "a number")
    if tp is str:
        if isinstance(value, str):
            return value
        fail(key, value, "a string")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            fail(key, value, "a list")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                fail(key, value, f"{len(args)} values")
            items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            a = args[0] if args else Any
            items = [_coerce(v, a, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        fail(key, value, "one of " + ", ".join(map(repr, typing.get_args(tp))))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            fail(key, value, "a table")
        return dict(value)
    raise TypeError(f"{key}: unsupported field type {tp!r}")  # a programming error, not input


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = _schema_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in fields:
            rest = ""
            while isinstance(value, dict) and len(value) == 1:  # the rest of a dotted key
                (k, value), = value.items()
                rest += "." + k
            raise _unknown(prefix, name, fields, rest)
        schema = fields[name].metadata.get("schema")
        if schema is not None:
            kwargs[name] = _build_open_table(schema, value, prefix + name)
        else:
            kwargs[name] = _coerce(value, hints[name], prefix + name)
    return cls(**kwargs)


def _build_open_table(schema: type, value: Any, key: str) -> dict[str, Any]:
    """A table whose keys are (a subset of) the fields of ``schema``, typed by them."""
    if not isinstance(value, dict):
        fail(key, value, f"a table of {schema.__name__} keys")
    hints = _schema_types(schema)
    out = {}
    for k, v in value.items():
        if k not in hints:
            raise _unknown(key + ".", k, hints)
        out[k] = _coerce(v, hints[k], f"{key}.{k}")
    return out


#: Setting one of these by override clears the other (they are mutually exclusive).
_EXCLUSIVE = {"train.steps": "train.epochs", "train.epochs": "train.steps"}


def _override_value(text: str) -> Any:
    """An override's text as a TOML literal (``0.05``, ``true``, ``[0.2, 1.0]``, ``"quoted"``);
    any other text is taken as a plain string (``linear``, ``cuda:1``, ``~/data``, ``auto``). The
    field's type then checks it (one walker: :func:`_coerce`)."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def merge_overrides(data: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """A copy of the config data ``data`` (nested tables, as read from TOML) with the
    ``"a.b=value"`` overrides merged in; nothing is typed or validated here (the one build of
    :func:`config_from_dict` does it, naming the key)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. optim.lr=0.05)")
        key, text = (x.strip() for x in item.split("=", 1))
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty part in the key {key!r}")
        node = out
        for i, name in enumerate(parts[:-1]):
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise ConfigError(f"unknown key {key!r}: {'.'.join(parts[:i + 1])!r} is a value, "
                                 "not a section")
        value = node[parts[-1]] = _override_value(text)
        other = _EXCLUSIVE.get(key)
        set_to_none = value is None or (isinstance(value, str) and value.lower() in _NONE_WORDS)
        if other is not None and not set_to_none:
            sec, leaf = other.split(".")
            out.setdefault(sec, {})[leaf] = None
    return out


def apply_overrides(cfg: TrainConfig, overrides: typing.Sequence[str]) -> TrainConfig:
    """A new config: ``cfg`` with the ``"a.b=value"`` overrides (:func:`merge_overrides`), built
    and typed once (not yet range-validated). An unknown key is refused with the closest match."""
    return config_from_dict(merge_overrides(config_to_dict(cfg), overrides))


def all_keys(cls: type = None, prefix: str = "") -> list[str]:
    """Every settable dotted key of :class:`TrainConfig` (``augment.*`` included)."""
    cls = TrainConfig if cls is None else cls
    out: list[str] = []
    hints = _schema_types(cls)
    for f in dataclasses.fields(cls):
        schema = f.metadata.get("schema")
        if schema is not None:
            out += [f"{prefix}{f.name}.{k}" for k in _schema_types(schema)]
        elif dataclasses.is_dataclass(hints[f.name]):
            out += all_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from plain data (a parsed TOML file or a saved config.json);
    unknown keys are refused, types checked. Not yet validated. A ``[train]`` table that sets
    ``steps`` but not ``epochs`` clears the default ``epochs``."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config is a table of sections, got {type(data).__name__}")
    cfg = _build(TrainConfig, data)
    loop = data.get("train", {})
    if isinstance(loop, dict) and loop.get("steps") is not None and "epochs" not in loop:
        cfg.train.epochs = None
    return cfg


def read_run_config(path: str | Path) -> TrainConfig:
    """The config of a run folder's ``config.json`` (not validated: the ranges of a later version
    may differ); a file that is not a run config (torn, not JSON, not a table, an unknown key)
    is a ConfigError naming it."""
    path = Path(path)
    try:
        return config_from_dict(json.loads(path.read_text()))
    except (ValueError, UnicodeDecodeError, TypeError) as e:
        raise ConfigError(f"{str(path)!r} is not a valid run config ({str(e).splitlines()[0][:200]}); "
                          "restore it, or delete the run folder to start again") from None


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain-data form (JSON-ready; tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_to_toml(cfg: TrainConfig) -> str:
    """The resolved config as TOML (top-level keys, then one table per section); a None (auto,
    unset) value is a comment line naming the key, since TOML has no null, so every key shows."""
    data = config_to_dict(cfg)

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    def line(k: str, v: Any) -> str:  # an unset key shows as a comment, so it can be found
        return f"# {k} = none (auto/unset; set it to override)" if v is None else f"{k} = {value(v)}"

    lines = [line(k, v) for k, v in data.items() if not isinstance(v, dict)]
    for section, body in data.items():
        if isinstance(body, dict):
            lines += ["", f"[{section}]"]
            lines += [line(k, v) for k, v in body.items()]
    return "\n".join(lines) + "\n"


def shipped_configs() -> list[str]:
    """Names of the configs shipped in ``realnet/configs/``."""
    root = resources.files("realnet") / "configs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def config_description(name: str, width: int = 110) -> str:
    """What a shipped config is: the first sentence of the comment at the top of its TOML (after a
    lead-in line ending in a colon, which the paper's configs share), cut to ``width`` characters."""
    text = (resources.files("realnet") / "configs" / f"{name}.toml").read_text()
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or not line.strip("# "):
            break
        lines.append(line.lstrip("# ").strip())
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    para = " ".join(lines)
    m = re.search(r"[.;](\s|$)", para)
    desc = para[: m.start() + 1] if m else para
    return desc if len(desc) <= width else desc[: width - 3].rstrip() + "..."


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A TOML path as given, or the shipped config of that name (``cifar10_directpred``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    name = p.name[:-5] if p.name.endswith(".toml") else p.name
    shipped = resources.files("realnet") / "configs" / f"{name}.toml"
    if shipped.is_file() and str(p) in (name, name + ".toml"):
        return Path(str(shipped))
    names = shipped_configs()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"--config {str(name_or_path)!r}: no such file and no shipped config of "
                     f"that name{hint} (shipped: {', '.join(names)})")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, tables merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_toml(path: str | Path, chain: tuple[str, ...]) -> dict[str, Any]:
    """A config file's data; a top-level ``base = "name-or-path"`` starts from that config (its
    tables merged key by key, this file's values winning), recursively."""
    resolved = str(resolve_config_path(path))
    if resolved in chain:
        raise ConfigError(f"--config {str(path)!r}: 'base' makes a cycle: {' -> '.join(chain + (resolved,))}")
    with open(resolved, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"--config {str(path)!r}: not valid TOML (UTF-8): {e}") from None
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"--config {str(path)!r}: base must be a config name or path, got {base!r}")
    beside = Path(resolved).parent / base
    return _merge(_read_toml(beside if beside.is_file() else base, chain + (resolved,)), data)


def load_config(path: str | Path | None, overrides: typing.Sequence[str] = ()) -> TrainConfig:
    """Load a TOML config (a path or a shipped name; ``None`` = the defaults), apply the
    ``key=value`` overrides and validate. Raises ConfigError naming the first bad key."""
    data = merge_overrides({} if path is None else _read_toml(path, ()), overrides)
    return config_from_dict(_select_only_predictor(data, overrides)).validate()


def _select_only_predictor(data: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """A method that takes one predictor (SimCLR, SwAV: none, ``identity``) selects it, unless
    the overrides name another (then validation refuses the pair in one line)."""
    method = METHODS.get(str(data.get("method", {}).get("name", MethodConfig.name)))
    explicit = any(o.split("=", 1)[0].strip() == "predictor.name" for o in overrides)
    if method is not None and method.only_predictor is not None and not explicit:
        data.setdefault("predictor", {})["name"] = method.only_predictor
    return data
