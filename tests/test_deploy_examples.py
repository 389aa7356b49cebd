"""docs/examples/: the systemd units pass `systemd-analyze verify` and run real sitelog commands,
and the Django settings load with Django's own checks passing."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from sitelog.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
UNITS = sorted((EXAMPLES / "systemd").iterdir())
INSTALLED = "/opt/sitelog/venv/bin/sitelog"  # where docs/deploy.md installs it
SITELOG = str(Path(sys.executable).with_name("sitelog"))


def exec_lines(unit: Path) -> list[list[str]]:
    return [shlex.split(value) for value in
            re.findall(r"^Exec\w+=(.+)$", unit.read_text(), re.MULTILINE)]


def test_there_are_the_units_docs_deploy_describes() -> None:
    assert [unit.name for unit in UNITS] == [
        "sitelog-ship.service", "sitelog-ship.timer", "sitelog-tail.service", "sitelog.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="needs Debian's systemd package (scripts/test.sh installs it)")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """With the installed path replaced by this venv's sitelog: verify checks it is executable."""
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, SITELOG))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / u.name) for u in UNITS)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"], ids=lambda u: u.name)
def test_units_run_sitelog_commands_that_exist(unit: Path) -> None:
    commands = exec_lines(unit)
    assert commands and all(argv[0] == INSTALLED for argv in commands)
    for argv in commands:
        group: click.Command = main
        words = argv[1:]
        while isinstance(group, click.Group) and words and words[0] in group.commands:
            group, words = group.commands[words[0]], words[1:]
        assert not isinstance(group, click.Group), argv
        group.make_context(group.name or "", list(words))  # unknown options raise UsageError


def test_hardening() -> None:
    for unit in (u for u in UNITS if u.suffix == ".service"):
        text = unit.read_text()
        for line in ("User=sitelog", "ProtectSystem=strict", "NoNewPrivileges=true"):
            assert f"\n{line}\n" in text, (unit.name, line)
        writable = re.search(r"^ReadWritePaths=(.+)$", text, re.MULTILINE)
        assert writable is not None and len(writable.group(1).split()) == 2, unit.name


def test_django_example_settings_load_and_pass_the_checks(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n')
    script = ("import django; django.setup(); from django.core.management import call_command; "
              "call_command('check', fail_level='WARNING')")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")},
           "DJANGO_SETTINGS_MODULE": "django_settings", "PYTHONPATH": str(EXAMPLES),
           "SITELOG_CONFIG": str(config)}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_django_example_fails_the_checks_on_a_bad_sitelog_config(tmp_path: Path) -> None:
    """The check above can fail: a bad value in the sitelog config is an error at start-up."""
    config = tmp_path / "config.toml"
    config.write_text('[buffer]\ndurability = "fast"\n')
    script = ("import django; django.setup(); from django.core.management import call_command; "
              "call_command('check')")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")},
           "DJANGO_SETTINGS_MODULE": "django_settings", "PYTHONPATH": str(EXAMPLES),
           "SITELOG_CONFIG": str(config)}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "buffer.durability" in result.stdout + result.stderr
