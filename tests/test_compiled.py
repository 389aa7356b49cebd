"""The modules pyproject.toml lists under `[tool.sitelog] compiled` run compiled (mypyc, setup.py)
unless the install skipped it with SITELOG_PURE_PYTHON, and none is older than its source: a stale
compiled module would silently run code that is no longer in the tree."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPILED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["sitelog"][
    "compiled"]
EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


@pytest.mark.parametrize("name", COMPILED)
def test_listed_module_runs_compiled_and_current(name: str) -> None:
    if os.environ.get("SITELOG_PURE_PYTHON"):
        pytest.skip("SITELOG_PURE_PYTHON is set: sitelog was installed without compiling")
    path = Path(importlib.import_module(name).__file__ or "")
    assert path.name.endswith(EXTENSIONS), (
        f"{name} runs from {path}, not compiled: reinstall (pip install -e .), or set "
        "SITELOG_PURE_PYTHON=1 to test pure Python")
    source = path.with_name(path.name.split(".")[0] + ".py")
    if source.exists():
        assert source.stat().st_mtime <= path.stat().st_mtime, (
            f"{source} changed after it was compiled: reinstall (pip install -e .)")


def test_the_list_names_modules_of_the_shipper_only() -> None:
    """Compiled modules cannot be monkeypatched or hold dynamic attributes: the list stays small,
    on the shipper's per-record path (agent/ runs in the website's processes, unchanged)."""
    assert COMPILED and all(name.startswith("sitelog.shipper.") for name in COMPILED)
