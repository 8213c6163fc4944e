"""Imports run one way between the packages and no module imports itself back (README, "Layers").

Every ``import`` statement of the project's packages is parsed (at module level, inside
functions and inside ``if TYPE_CHECKING:`` blocks alike: a lazy import, or one for annotations
only, is still a dependency of the design), relative imports resolved, and two rules
checked: a package imports only itself and the packages below it (``dynamics`` <- ``analysis`` <-
``realnet`` <- ``figures``; of ``dynamics``, ``realnet`` imports only the facts both layers share,
:mod:`dynamics.directset`, which imports nothing heavy), and the graph of module imports has no
cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dynamics", "analysis", "realnet", "figures")
#: package -> the project packages it may import (besides itself)
ALLOWED = {
    "dynamics": set(),
    "analysis": {"dynamics"},
    "realnet": {"analysis", "dynamics"},
    "figures": {"dynamics", "analysis", "realnet"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported by module ``name`` (a package import counts as its __init__)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


#: The only ``dynamics`` modules ``realnet`` imports itself (the rest it reaches through analysis).
REALNET_FROM_DYNAMICS = {"dynamics.directset"}


def test_packages_import_only_downwards():
    bad = []
    for mod, deps in _graph().items():
        pkg = mod.split(".")[0]
        for d in deps:
            dpkg = d.split(".")[0]
            if dpkg != pkg and dpkg not in ALLOWED[pkg]:
                bad.append(f"{mod} -> {d}")
            if pkg == "realnet" and dpkg == "dynamics" and d not in REALNET_FROM_DYNAMICS:
                bad.append(f"{mod} -> {d}")
    assert not bad, "imports against the layering: " + ", ".join(sorted(bad))


def test_training_does_not_import_the_tools():
    """``realnet.tools`` (benchmarks, numerics, GPU check) sit on top of training, never below it."""
    bad = [f"{m} -> {d}" for m, deps in _graph().items() for d in deps
           if m.startswith("realnet.") and not m.startswith("realnet.tools")
           and d.startswith("realnet.tools")]
    assert not bad, ", ".join(sorted(bad))
    graph = _graph()
    assert {"realnet.tools.benchutil", "realnet.training.step"} <= graph["realnet.tools.bench"]  # relative and absolute


def test_no_import_cycle_between_modules():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    # a package's __init__ importing its own submodules is not a cycle unless a submodule
    # imports the package back
    real = [c for c in cycles if not (len(c) == 3 and c[0] == c[-1]
                                      and c[1].startswith(c[0] + "."))]
    assert not real, "import cycles: " + "; ".join(" -> ".join(c) for c in real)


def test_the_checker_sees_relative_and_lazy_imports():
    """The rules above could fail: the parser finds a lazy relative import in a function."""
    graph = _graph()
    assert "dynamics._kernels" in graph["dynamics.modes"]  # `from . import _kernels` in a function
    assert "analysis.metrics" in graph["realnet.eval.evaluate"]
