"""Every Sphinx-style cross-reference in a docstring or comment of the project
(``:func:`x```, ``:mod:``, ``:class:``, ``:meth:``, ``:data:``) names something that exists: a dotted
name resolves by import and attribute lookup, a bare name in the module that holds it."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dynamics", "analysis", "realnet", "figures")
REF = re.compile(r":(?:func|mod|class|meth|data|attr|exc):`~?([A-Za-z_][\w.]*)`")


def _external(top: str) -> bool:
    """A name from outside the project (the standard library, numpy, torch, ...)."""
    if top in PACKAGES:
        return False
    try:
        importlib.import_module(top)
    except ImportError:
        return False
    return True


def _resolve(name: str, home: str) -> bool:
    parts = name.split(".")
    if parts[0] not in PACKAGES:  # a bare name: the module's own, or a method of one of its classes
        mod = importlib.import_module(home)
        obj = mod
        for p in parts:
            if not hasattr(obj, p):
                return any(hasattr(c, parts[0]) for c in vars(mod).values() if isinstance(c, type)) \
                    if len(parts) == 1 else False
            obj = getattr(obj, p)
        return True
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for p in parts[i:]:
            if not hasattr(obj, p):
                # a dataclass field has no class attribute without a default
                fields = getattr(obj, "__dataclass_fields__", {})
                if p in fields:
                    return True
                return False
            obj = getattr(obj, p)
        return True
    return False


def test_every_cross_reference_resolves():
    bad = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path.name == "__main__.py":
                continue
            rel = path.relative_to(ROOT).with_suffix("")
            home = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            for m in REF.finditer(path.read_text()):
                if "." in m.group(1) and _external(m.group(1).split(".")[0]):
                    continue
                if not _resolve(m.group(1), home):
                    bad.append(f"{path.relative_to(ROOT)}: {m.group(1)}")
    assert not bad, f"{len(bad)} unresolved: " + "; ".join(bad)
