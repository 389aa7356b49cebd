"""The README's command list, made from the CLI's own help (tests/test_readme.py keeps it true).

    .venv/bin/python scripts/readme_commands.py          # print the block
    .venv/bin/python scripts/readme_commands.py --write  # replace it in README.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from sitelog.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- commands: scripts/readme_commands.py -->", "<!-- /commands -->"


def leaves(group: click.Group, ctx: click.Context) -> list[tuple[str, str]]:
    """(usage, one-line help) of every command under `group`, in the order `--help` lists them."""
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        sub = click.Context(command, info_name=name, parent=ctx)
        if isinstance(command, click.Group):
            found += leaves(command, sub)
            continue
        pieces = " ".join(command.collect_usage_pieces(sub))
        found.append((f"{sub.command_path} {pieces}", command.get_short_help_str(limit=200)))
    return found


def block() -> str:
    """The fenced list between the README's markers."""
    rows = leaves(main, click.Context(main, info_name="sitelog"))
    width = max(len(usage) for usage, _ in rows)
    lines = [f"{usage:<{width}}  # {text}" for usage, text in rows]
    return "\n".join([BEGIN, "```sh", *lines, "```", END])


def replaced(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block() + text[end:]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    if parser.parse_args().write:
        README.write_text(replaced(README.read_text()))
    else:
        sys.stdout.write(block() + "\n")
