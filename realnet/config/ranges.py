"""Allowed values of config keys, declared next to their defaults, and the one refusal message.

A config section declares a key as ``lr: float = knob(0.03, number(0, lo_open=True))``: the
default and the allowed range sit on one line. :func:`check_fields` checks every declared key of a
section, and every refusal (here and in the cross-key checks of the sections) reads::

    optim.lr=-0.1 is invalid: allowed a number in (0, inf)

A leaf module: it imports nothing from the project.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NoReturn
from analysis.errors import ConfigError

__all__ = ["Allowed", "fail", "knob", "check_fields", "integer", "number", "flag", "one_of",
           "ordered_pair", "allowed_of"]


def fail(key: str, value: Any, allowed: str) -> NoReturn:
    """Raise the project's one refusal: ``ConfigError("key=value is invalid: allowed ...")``."""
    raise ConfigError(f"{key}={value!r} is invalid: allowed {allowed}")


@dataclass(frozen=True)
class Allowed:
    """A predicate on a key's value and the description of what it allows (a string, or a
    function giving one, for registries filled after the section is declared)."""

    ok: Callable[[Any], bool]
    describe: str | Callable[[], str]

    @property
    def text(self) -> str:
        return self.describe if isinstance(self.describe, str) else self.describe()

    def check(self, key: str, value: Any) -> None:
        """:func:`fail` unless ``ok(value)``."""
        if not self.ok(value):
            fail(key, value, self.text)


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _optional(a: Allowed, optional: bool) -> Allowed:
    if not optional:
        return a
    return Allowed(lambda v: v is None or a.ok(v), lambda: a.text + " or none")


def integer(lo: int, hi: int | None = None, *, optional: bool = False) -> Allowed:
    """An integer ``>= lo`` (and ``<= hi``)."""
    text = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    ok = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi))
    return _optional(Allowed(ok, text), optional)


def number(lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
           hi_open: bool = False, optional: bool = False) -> Allowed:
    """A finite number in the interval ``[lo, hi]`` (either end open on request)."""
    lb, rb = ("(" if lo_open or lo == -math.inf else "["), (")" if hi_open or hi == math.inf else "]")

    def ok(v: Any) -> bool:
        return _real(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    return _optional(Allowed(ok, f"a number in {lb}{lo}, {hi}{rb}"), optional)


def flag(*, optional: bool = False) -> Allowed:
    """``true`` or ``false`` (or none: auto)."""
    return _optional(Allowed(lambda v: isinstance(v, bool), "true or false"), optional)


def one_of(choices: Iterable[str] | Callable[[], Iterable[str]]) -> Allowed:
    """One of ``choices``: a collection (a registry's keys are read when the check runs), or a
    function giving one, for a registry defined after the section that names it."""
    get = choices if callable(choices) else (lambda: choices)
    return Allowed(lambda v: isinstance(v, str) and v in tuple(get()),
                   lambda: "one of " + ", ".join(repr(c) for c in get()))


def ordered_pair(lo: float, hi: float, *, lo_open: bool = True, hi_open: bool = False) -> Allowed:
    """A pair ``(a, b)`` of numbers with ``lo < a <= b <= hi`` (ends as given)."""
    inner = number(lo, hi, lo_open=lo_open, hi_open=hi_open)

    def ok(v: Any) -> bool:
        return (isinstance(v, (tuple, list)) and len(v) == 2 and all(inner.ok(x) for x in v)
                and v[0] <= v[1])

    return Allowed(ok, f"a pair (a, b) with a <= b, each {inner.text}")


def knob(default: Any, allowed: Allowed, **field_kwargs: Any) -> Any:
    """A dataclass field with its default and its :class:`Allowed` values (read by
    :func:`check_fields`)."""
    return dataclasses.field(default=default, metadata={"allowed": allowed}, **field_kwargs)


def allowed_of(cls: type, name: str) -> Allowed | None:
    """The :class:`Allowed` declared for field ``name`` of the dataclass ``cls`` (None: none)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get("allowed")


def check_fields(section: Any, prefix: str) -> None:
    """Check every field of the dataclass instance ``section`` that declares its allowed values;
    the key in the message is ``prefix + name`` (``prefix`` like ``"optim."``)."""
    for f in dataclasses.fields(section):
        allowed = f.metadata.get("allowed")
        if allowed is not None:
            allowed.check(prefix + f.name, getattr(section, f.name))
