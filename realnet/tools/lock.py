"""Write the lock, ``constraints.txt``: every runtime and test dependency of ``ssl-dynamics[test]``,
transitively, pinned at the version installed in the active environment (the one the suite was
run in). ``make lock`` runs it.

Which packages belong is pip's answer: a dry-run install of ``.[test]`` that ignores what is
installed (``pip install --dry-run --ignore-installed --report``), so the list is what a fresh
machine installs. The version of each is the installed one where the package is installed (what
the tests ran against), else the resolver's choice (then install the lock and rerun the suite).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

__all__ = ["closure", "lock_lines", "main"]

HEADER = """\
# The lock: every runtime and test dependency of ssl-dynamics[test], transitively, at the versions
# the suite was run with (Python 3.11, Linux x86-64). Both README commands and .ci/run install
# with `-c constraints.txt`, so a fresh machine gets exactly these. torch/torchvision are the CUDA
# wheels (they run on a CPU-only machine); an unpinned torchvision pulls the newest torch.
# Regenerate after changing a dependency: `make lock` (python -m realnet.tools.lock), then run the
# suite. pyproject.toml keeps ranges for use inside other environments.
"""


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def closure(project: Path) -> dict[str, str]:
    """``{package: version}`` that pip would install for ``project[test]`` on a fresh machine
    (the project itself left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run",
                        "--ignore-installed", "--report", str(report), f"{project}[test]"],
                       check=True)
        items = json.loads(report.read_text())["install"]
    return {_key(i["metadata"]["name"]): i["metadata"]["version"] for i in items
            if _key(i["metadata"]["name"]) != "ssl-dynamics"}


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def lock_lines(resolved: dict[str, str]) -> list[str]:
    """One ``name==version`` line per package, sorted; the installed version where there is one."""
    return [f"{name}=={_installed(name) or version}" for name, version in sorted(resolved.items())]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m realnet.tools.lock", description=__doc__.split("\n\n")[0])
    p.add_argument("--project", default=".", help="the project folder (default: .)")
    p.add_argument("--out", default="constraints.txt")
    a = p.parse_args(argv)
    lines = lock_lines(closure(Path(a.project).resolve()))
    Path(a.out).write_text(HEADER + "".join(line + "\n" for line in lines))
    print(f"{a.out}: {len(lines)} packages pinned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
