"""Every CLI command against each operator mistake: a closed MongoDB port, a missing GeoIP
database, a buffer path that cannot be written, a bad config. Each either works (the condition
does not concern it) or prints one or two lines naming the problem and exits non-zero; never a
traceback, and the MongoDB password never shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from cli_setup import geodb_source, install_test_geodb
from click.testing import CliRunner
from conftest import free_port

from sitelog.buffer import Buffer
from sitelog.cli import main

CONDITIONS = ("closed_mongo", "missing_geoip", "unwritable_buffer", "bad_config")
PASSWORD = "s3cret-pw"
UNREACHABLE = "is not reachable"
NO_BUFFER = "cannot write the buffer"
NO_GEOIP = "no GeoIP database"
ACCESS_LINE = ('203.0.113.7 - - [07/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" '
               '"Mozilla/5.0"\n')

# command → what each condition does to it: a fragment of its one- or two-line error, or None
# when the command does not need what the condition breaks (it must then work). A bad config
# stops every command with exit status 2.
COMMANDS: dict[str, tuple[list[str], dict[str, str | None]]] = {
    "status": ([], {}),
    "ship": (["--once"], {"closed_mongo": "MongoDB unavailable", "unwritable_buffer": NO_BUFFER}),
    "dead-letters list": ([], {}),
    "dead-letters retry": ([], {}),
    "config check": ([], {"closed_mongo": UNREACHABLE, "missing_geoip": NO_GEOIP,
                          "unwritable_buffer": "cannot be created"}),
    "setup-schema": ([], {"closed_mongo": UNREACHABLE}),
    "geoip install": ([], {}),
    "geoip refresh": ([], {}),
    "geoip info": ([], {}),
    "geoip lookup": (["8.8.8.8"], {"missing_geoip": NO_GEOIP}),
    "geoip rollback": ([], {"missing_geoip": "no previous"}),
    "report": ([], {"closed_mongo": UNREACHABLE}),
    "rollup rebuild": (["--from", "2026-12-01", "--to", "2026-12-07"],
                       {"closed_mongo": UNREACHABLE}),
    "rollup run": ([], {"closed_mongo": UNREACHABLE}),
    "import": (["{access_log}"], {"unwritable_buffer": NO_BUFFER}),
}
# `run` is a daemon: it fails at start on a bad config or buffer, and otherwise keeps running
# through a MongoDB outage or without GeoIP (tested in a subprocess below).
DAEMON = {"unwritable_buffer": NO_BUFFER, "bad_config": "not valid TOML"}


def leaf_commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += leaf_commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_the_table_covers_every_command() -> None:
    assert sorted(set(leaf_commands(main)) - {"run"} - set(COMMANDS)) == []


def make_setup(tmp_path: Path, mongo_uri: str, db: str, condition: str) -> tuple[Path, Path]:
    """The config file for `condition` and the access log to import."""
    buffer_path = tmp_path / "buffer" / "buffer.db"
    uri = mongo_uri
    if condition == "closed_mongo":  # nothing listens there: refused at once
        uri = f"mongodb://sitelog:{PASSWORD}@127.0.0.1:{free_port()}/"
    if condition == "unwritable_buffer":  # root writes anywhere: a file where a folder must be
        (tmp_path / "not-a-dir").write_text("")
        buffer_path = tmp_path / "not-a-dir" / "buffer.db"
    else:
        Buffer(buffer_path).append("logs", {"level": "INFO", "logger": "t", "message": "m"})
    geodb_dir = tmp_path / "geodb"
    source = geodb_source(tmp_path)
    if condition != "missing_geoip":
        for marker in ("1", "2"):  # a previous database too, for `geoip rollback`
            install_test_geodb(tmp_path, geodb_dir, marker)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[buffer]\npath = "{buffer_path}"\n'
        f'[mongo]\nuri = "{uri}"\ndb = "{db}"\ntimeout_ms = 500\n'
        '[shipper]\nretry_initial_seconds = 0.1\nretry_give_up_seconds = 0.3\n'
        f'[geodb]\ndir = "{geodb_dir}"\nsource = "{source}"\n'
        '[metrics]\nenabled = false\n'
        '[reports]\ntimezone = "UTC"\n')
    if condition == "bad_config":
        config.write_text("[buffer\n")
    access_log = tmp_path / "access.log"
    access_log.write_text(ACCESS_LINE)
    return config, access_log


@pytest.fixture(autouse=True)
def no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("SITELOG_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("condition", CONDITIONS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_under_condition(command: str, condition: str, tmp_path: Path, mongo_uri: str,
                                 mongo_db_name: str) -> None:
    if command not in leaf_commands(main):
        pytest.skip(f"this sitelog has no `{command}`")
    args, failures = COMMANDS[command]
    config, access_log = make_setup(tmp_path, mongo_uri, mongo_db_name, condition)
    argv = ["--config", str(config), *command.split(),
            *(arg.format(access_log=access_log) for arg in args)]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    output = result.output
    assert "Traceback" not in output and PASSWORD not in output, output
    expected = "not valid TOML" if condition == "bad_config" else failures.get(condition)
    if expected is None:
        assert result.exit_code == 0, output
        return
    assert result.exit_code != 0, output
    assert expected in output, output
    if command != "config check":  # that one reports every check, one line each
        assert len(output.strip().splitlines()) <= 2, output


@pytest.mark.parametrize("condition", CONDITIONS)
def test_run_under_condition(condition: str, tmp_path: Path, mongo_uri: str,
                             mongo_db_name: str) -> None:
    """`sitelog run` in a real process: fails at start on what it cannot run without, else
    keeps running (retrying MongoDB, shipping without geography) until SIGTERM, exit 0."""
    config, _ = make_setup(tmp_path, mongo_uri, mongo_db_name, condition)
    sitelog = Path(sys.executable).with_name("sitelog")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    with subprocess.Popen([str(sitelog), "--config", str(config), "run"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        if condition in DAEMON:
            output = proc.communicate(timeout=60)[0]
            assert proc.returncode != 0, output
            assert DAEMON[condition] in output and len(output.strip().splitlines()) <= 2, output
            return
        # Its first ship's outcome: the scheduler runs by then, so SIGTERM stops it as in service.
        expected = "records stay buffered" if condition == "closed_mongo" else "1 shipped"
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(expected in line for line in lines):
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        output = "".join(lines) + proc.communicate(timeout=60)[0]
    assert expected in output, output
    assert proc.returncode == 0, output
    assert "Traceback" not in output and PASSWORD not in output, output


def test_run_stops_cleanly_on_a_sigterm_as_it_starts(tmp_path: Path, mongo_uri: str,
                                                     mongo_db_name: str) -> None:
    """SIGTERM right after `sitelog run` says it is shipping (its handlers are installed, its
    scheduler may not have started yet): exit 0, no traceback. A deploy's restart does that."""
    config, _ = make_setup(tmp_path, mongo_uri, mongo_db_name, "healthy")
    sitelog = Path(sys.executable).with_name("sitelog")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    with subprocess.Popen([str(sitelog), "--config", str(config), "run"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        lines = [proc.stdout.readline()]  # type: ignore[union-attr]
        while lines[-1] and "sitelog: shipping" not in lines[-1]:
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        output = "".join(lines) + proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "sitelog: stopped" in output, output
