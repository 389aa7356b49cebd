"""Build step pyproject.toml cannot express: compile the shipper's per-record hot path with mypyc.

The modules `[tool.sitelog] compiled` lists are plain, type-hinted Python that also runs as it is;
compiled, the enrichment chain runs about 1.2x faster (docs/benchmarks.md). Set
SITELOG_PURE_PYTHON=1 to install without a C compiler. mypyc names modules by their folders, and
sitelog's folders are mapped onto one namespace (agent/ is sitelog.agent), so the sources are
first copied into that shape under build/.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
STAGE = ROOT / "build" / "mypyc-src"


def staged_tree(package_dir: dict[str, str]) -> None:
    """Copy each mapped folder to its package's path under STAGE: agent/ → sitelog/agent/."""
    shutil.rmtree(STAGE, ignore_errors=True)
    for package, folder in sorted(package_dir.items()):
        shutil.copytree(ROOT / folder, STAGE.joinpath(*package.split(".")),
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"),
                        dirs_exist_ok=True)


def compiled_extensions() -> list[Extension]:
    """The mypyc extensions of the listed modules, or none when SITELOG_PURE_PYTHON is set."""
    if os.environ.get("SITELOG_PURE_PYTHON"):
        return []
    from mypyc.build import mypycify

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    staged_tree(conf["tool"]["setuptools"]["package-dir"])
    sources = [str(STAGE.joinpath(*module.split(".")).with_suffix(".py"))
               for module in conf["tool"]["sitelog"]["compiled"]]
    # Third-party packages are not in an isolated build's environment: their values are Any to
    # mypy, and only the listed modules are checked.
    options = ["--ignore-missing-imports", "--follow-imports=silent",
               f"--cache-dir={ROOT / 'build' / 'mypy-cache'}"]
    return mypycify([*options, *sources], group_name="sitelog.shipper.compiled",
                    target_dir=str(ROOT / "build" / "mypyc-c"))


setup(ext_modules=compiled_extensions())
