"""The wheel: holds every module of the source tree under `sitelog`, imports, and runs `sitelog`.

Installing the wheel with its dependencies from PyPI would be slow and need the network; a venv
with --system-site-packages would see the base interpreter, not the project's venv. So the fresh
venv gets the wheel alone (--no-deps), and a .pth line appends the project venv's site-packages:
a plain path entry, so the .pth files in it (the editable install's import hook) never run.
Dependencies resolve from there, while `sitelog` itself can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
TOP_LEVEL_SOURCE_DIRS = {"agent", "buffer", "shipper", "geodb"}

IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys, traceback
import sitelog
failed = {}
names = ["sitelog"]
for info in pkgutil.walk_packages(sitelog.__path__, "sitelog.", onerror=names.append):
    names.append(info.name)
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps({"file": sitelog.__file__, "prefix": sys.prefix, "modules": names,
                  "failed": failed,
                  "strays": [n for n in %r if importlib.util.find_spec(n) is not None]}))
"""


def source_files() -> set[str]:
    """Every file under a package directory (modules and package data such as .js files), as its
    path in the wheel; caches and hidden files (editors' temporaries) are not part of it."""
    found = set()
    for package, directory in PACKAGE_DIRS.items():
        prefix = package.replace(".", "/")
        for path in (ROOT / directory).rglob("*"):
            relative = path.relative_to(ROOT / directory)
            if path.is_file() and not any(
                part == "__pycache__" or part.startswith(".") for part in relative.parts
            ):
                found.add(f"{prefix}/{relative.as_posix()}")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the tree (a build in place would leave build/ behind)."""
    work = tmp_path_factory.mktemp("packaging")
    src = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for directory in set(PACKAGE_DIRS.values()):
        shutil.copytree(ROOT / directory, src / directory, ignore=ignore)
    dist = work / "dist"
    build = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)]
    # Offline when this venv has the build backend; else build's isolated env (from PyPI).
    if subprocess.run([*build, "--no-isolation"], capture_output=True).returncode != 0:
        result = subprocess.run(build, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    (built,) = dist.glob("sitelog-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Path:
    """A fresh venv with only the wheel installed; dependencies come from the project's venv."""
    target = wheel.parent.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)],
                   check=True, timeout=120)
    python = target / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        check=True, timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(purelib) / "project-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return target


def clean_env() -> dict[str, str]:
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SITELOG_")}


@pytest.mark.slow
def test_the_wheel_holds_every_source_file_and_nothing_top_level(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(source_files() - names)
    assert missing == [], f"not in the wheel (add their packages to pyproject.toml): {missing}"
    name, version = wheel.name.split("-")[:2]
    assert {name.split("/")[0] for name in names} == {"sitelog", f"{name}-{version}.dist-info"}


@pytest.mark.slow
def test_every_module_imports_from_the_installed_wheel(venv, tmp_path):
    script = IMPORT_EVERYTHING % sorted(TOP_LEVEL_SOURCE_DIRS)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", script], cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["file"]).is_relative_to(report["prefix"])
    assert sorted(report["failed"]) == [], "\n".join(report["failed"].values())
    assert report["strays"] == []
    expected = {name.removesuffix("/__init__.py").removesuffix(".py").replace("/", ".")
                for name in source_files() if name.endswith(".py")}
    assert sorted(expected - set(report["modules"])) == []


@pytest.mark.slow
def test_the_console_script_runs(venv, tmp_path):
    result = subprocess.run(
        [str(venv / "bin" / "sitelog"), "--help"], cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: sitelog" in result.stdout
