"""The `sitelog` command line through click's test runner, against the test MongoDB server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_setup import install_test_geodb
from click.testing import CliRunner, Result

from sitelog.buffer import Buffer, DeadLetter
from sitelog.cli import main


@pytest.fixture(autouse=True)
def no_ambient_config(tmp_path, monkeypatch):
    for name in [name for name in os.environ if name.startswith("SITELOG_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def config_file(tmp_path: Path, mongo_uri: str, mongo_db_name: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n'
        f'[mongo]\nuri = "{mongo_uri}"\ndb = "{mongo_db_name}"\ntimeout_ms = 3000\n'
    )
    return path


@pytest.fixture
def buffer(tmp_path: Path) -> Buffer:
    return Buffer(tmp_path / "buffer.db")


def log_record(n: int) -> dict[str, object]:
    """A valid `logs` document (level, logger, message) numbered n."""
    return {"level": "INFO", "logger": "cli", "message": f"record {n}", "n": n}


def sitelog(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def status(config: Path) -> dict:
    result = sitelog(config, "status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_status_shows_the_buffer(config_file, buffer):
    for n in range(3):
        buffer.append("logs", log_record(n))
    result = sitelog(config_file, "status")
    assert result.exit_code == 0
    assert "sitelog status" in result.output and buffer.agent_id in result.output
    data = status(config_file)
    assert data["rows"] == 3 and data["dead_letters"] == 0
    assert data["path"] == buffer.path and data["agent_id"] == buffer.agent_id
    assert data["oldest_age_seconds"] >= 0 and data["last_ship_result"] is None


def test_ship_once_ships_everything_and_status_reports_it(config_file, buffer, mongo):
    for n in range(25):
        buffer.append("logs", log_record(n))
    result = sitelog(config_file, "ship", "--once")
    assert result.exit_code == 0, result.output
    assert "25 shipped (0 already there)" in result.output
    assert sorted(doc["n"] for doc in mongo.logs.find()) == list(range(25))
    data = status(config_file)
    assert data["rows"] == 0 and data["last_ship_result"] == "ok"
    assert data["counters"]["shipped"] == 25


def test_ship_needs_once(config_file):
    result = sitelog(config_file, "ship")
    assert result.exit_code == 2 and "--once" in result.output


def dead_letter(buffer: Buffer, *ns: int) -> None:
    """Refuse the buffered records as a shipper would after a permanent MongoDB error."""
    for n in ns:
        buffer.append("logs", log_record(n))
    records = buffer.read_batch(100)
    buffer.complete([], [DeadLetter(r.seq, r.kind, r.ts, r.data, "validation failed")
                         for r in records])


def test_dead_letters_list_and_retry(config_file, buffer, mongo):
    dead_letter(buffer, 1, 2)
    listed = sitelog(config_file, "dead-letters", "list")
    assert listed.exit_code == 0 and listed.output.count("validation failed") == 2
    letters = json.loads(sitelog(config_file, "dead-letters", "list", "--json").output)
    assert [json.loads(letter["data"])["n"] for letter in letters] == [1, 2]

    retried = sitelog(config_file, "dead-letters", "retry", str(letters[0]["id"]))
    assert retried.exit_code == 0 and "requeued 1 dead letters" in retried.output
    assert status(config_file)["dead_letters"] == 1
    assert sitelog(config_file, "dead-letters", "retry").output.strip() == "requeued 1 dead letters"
    assert status(config_file)["dead_letters"] == 0

    assert "2 shipped" in sitelog(config_file, "ship", "--once").output
    assert sorted(doc["n"] for doc in mongo.logs.find()) == [1, 2]


def test_config_check_checks_mongo_geoip_and_the_buffer(config_file, mongo_db_name, tmp_path):
    result = sitelog(config_file, "config", "check")
    lines = result.output.splitlines()
    assert lines[0] == f"config OK ({config_file})"
    assert lines[1].split()[:2] == ["mongo", "ok"] and mongo_db_name in lines[1]
    assert lines[2].split()[:2] == ["geoip", "failed"] and "sitelog geoip install" in lines[2]
    assert lines[3].split()[:2] == ["buffer", "ok"] and "will be created" in lines[3]
    assert result.exit_code == 1  # the GeoIP database is missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # nothing created

    with config_file.open("a") as file:
        file.write(f'[geodb]\ndir = "{tmp_path / "geodb"}"\n')
    install_test_geodb(tmp_path, tmp_path / "geodb")
    result = sitelog(config_file, "config", "check", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] and data["settings"]["mongo"]["db"] == mongo_db_name
    assert [(c["name"], c["status"]) for c in data["checks"]] == [
        ("mongo", "ok"), ("geoip", "ok"), ("buffer", "ok")]


def test_config_check_offline_skips_mongo_and_says_so(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[mongo]\nuri = "mongodb://127.0.0.1:1"\n[shipper]\nenrich = []\n')
    result = sitelog(config, "config", "check", "--offline")
    assert result.exit_code == 0, result.output
    assert "mongo  skipped --offline" in result.output
    assert "geoip  skipped geoip is not in shipper.enrich" in result.output
    assert result.output.splitlines()[-1].startswith("skipped: mongo, geoip;")


@pytest.mark.parametrize(("text", "message"), [
    ('[buffer]\ndurability = "fast"\n', "config key buffer.durability = 'fast'"),
    ('[shipper]\nenrich = ["no_such_processor"]\n', "unknown processor 'no_such_processor'"),
    ("[buffer\n", "is not valid TOML"),
], ids=["bad-value", "unknown-processor", "invalid-toml"])
def test_config_check_with_a_bad_config_exits_2_with_the_message(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = sitelog(path, "config", "check")
    assert message in result.output
    assert result.exit_code == 2


def test_a_missing_config_file_exits_2(tmp_path):
    result = sitelog(tmp_path / "missing.toml", "status")
    assert "missing.toml does not exist" in result.output
    assert result.exit_code == 2


def test_a_removed_key_fails_config_check_and_ship_with_status_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(f'[buffer]\npath = "{tmp_path / "b.db"}"\n'
                      '[shipper]\naggregate = ["rollups"]\n')  # the rollup job replaced it
    for command in (["config", "check"], ["ship", "--once"]):
        result = CliRunner().invoke(main, ["--config", str(config), *command])
        assert result.exit_code == 2, (command, result.output)
        assert "unknown key 'aggregate'" in result.output


@pytest.mark.parametrize("args", [["--help"], ["status"], ["status", "--json"],
                                  ["config", "check"], ["report"], ["report", "--json"],
                                  ["geoip", "info"], ["dead-letters", "list"],
                                  ["dead-letters", "list", "--json"]],
                         ids=" ".join)
def test_read_only_commands_create_no_files(args, tmp_path, monkeypatch, mongo_uri,
                                            mongo_db_name):
    """On built-in defaults (buffer ./sitelog-buffer.db, GeoIP ./geodb-data) in an empty folder."""
    monkeypatch.setenv("SITELOG_MONGO_URI", mongo_uri)
    monkeypatch.setenv("SITELOG_MONGO_DB", mongo_db_name)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    expected = 1 if args == ["config", "check"] else 0  # config check: no GeoIP database
    assert result.exit_code == expected, result.output
    assert list(tmp_path.iterdir()) == []
    if args == ["dead-letters", "list", "--json"]:
        assert json.loads(result.output) == []
