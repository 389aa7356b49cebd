"""The README says what is true: its command list is the CLI's own help, and CI runs its test
command."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_the_command_list_is_the_clis_help() -> None:
    spec = importlib.util.spec_from_file_location("readme_commands",
                                                  ROOT / "scripts" / "readme_commands.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.block() in README, (
        "README's command list is out of date: run .venv/bin/python scripts/readme_commands.py "
        "--write")


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    commands = re.findall(r"^(\./scripts/test\.sh[^#\n]*?)\s*#", README, re.MULTILINE)
    assert commands == ["./scripts/test.sh"]
    last = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert last == f"exec {commands[0]}"
