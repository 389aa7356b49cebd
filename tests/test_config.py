"""Configuration: defaults, lookup order, environment overrides, messages, no password leaks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from sitelog.buffer import Buffer
from sitelog.cli import main
from sitelog.config import Config, ConfigError, find_config_file, load_config

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cr3t-Pa55"
URI_WITH_PASSWORD = f"mongodb://sitelog:{PASSWORD}@127.0.0.1:1/?authSource=admin"


@pytest.fixture(autouse=True)
def no_ambient_config(tmp_path, monkeypatch):
    """Run each test in an empty directory with no SITELOG_* variables of the caller's shell."""
    for name in [name for name in os.environ if name.startswith("SITELOG_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def error_of(text: str = "", env: dict[str, str] | None = None) -> str:
    """The ConfigError message for a config file with `text` and environment `env`."""
    path = toml(Path("bad.toml"), text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return str(info.value)


def test_defaults_load_without_any_file():
    config = load_config(env={})
    assert config.source == "built-in defaults"
    assert config.model_dump() == Config().model_dump()
    assert config.buffer.durability == "process" and config.shipper.batch_size == 1000


def test_the_shipped_config_toml_is_exactly_the_defaults():
    shipped = ROOT / "config.toml"
    if not shipped.is_file():
        pytest.skip("the repository has no top-level config.toml yet")
    assert load_config(shipped, env={}).model_dump() == Config().model_dump()


def test_lookup_order_explicit_then_env_then_cwd_then_defaults(tmp_path):
    explicit = toml(tmp_path / "explicit.toml", '[buffer]\npath = "explicit.db"\n')
    from_env = toml(tmp_path / "env.toml", '[buffer]\npath = "env.db"\n')
    toml(tmp_path / "config.toml", '[buffer]\npath = "cwd.db"\n')
    env = {"SITELOG_CONFIG": str(from_env)}
    assert load_config(explicit, env=env).buffer.path == "explicit.db"
    assert load_config(None, env=env).buffer.path == "env.db"
    assert load_config(None, env={}).buffer.path == "cwd.db"
    assert find_config_file(None, {}) == Path("config.toml")
    (tmp_path / "config.toml").unlink()
    assert find_config_file(None, {}) is None
    assert load_config(None, env={}).buffer.path == Config().buffer.path


def test_environment_overrides_file_values(tmp_path):
    path = toml(tmp_path / "c.toml", '[mongo]\ndb = "fromfile"\n[buffer]\npath = "file.db"\n')
    config = load_config(path, env={
        "SITELOG_MONGO_URI": "mongodb://db.example:27017",
        "SITELOG_BUFFER_PATH": "/var/lib/sitelog/buffer.db",
        "SITELOG_MONGO_DB": "fromenv",
        "SITELOG_AGENT_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16",
        "SITELOG_AGENT_EXCLUDE_PATHS": '["^/a{1,3}$", "^/b"]',
        "SITELOG_MONGO_JOURNAL": "true",
        "SITELOG_AGENT_CAPTURE_FORM": "0",
        "SITELOG_SHIPPER_BATCH_SIZE": "500",
        "SITELOG_TEST_MONGO_URI": "mongodb://ignored",  # other tools' variables are left alone
    })
    assert config.mongo.uri == "mongodb://db.example:27017"
    assert config.buffer.path == "/var/lib/sitelog/buffer.db"
    assert config.mongo.db == "fromenv"
    assert config.agent.trusted_proxies == ["10.0.0.0/8", "192.168.0.0/16"]
    assert config.agent.exclude_paths == ["^/a{1,3}$", "^/b"]
    assert config.mongo.journal is True and config.agent.capture_form is False
    assert config.shipper.batch_size == 500


@pytest.mark.parametrize(("text", "expected"), [
    ('[buffer]\ndurability = "fast"', ["buffer.durability", "'fast'", "'process', 'os' or"]),
    ("[shipper]\nbatch_size = -1", ["shipper.batch_size", "-1", "greater than or equal to 1"]),
    ('[shipper]\ncron = "61 * * * *"', ["shipper.cron", "'61 * * * *'", "not a crontab"]),
    ('[agent]\nexclude_paths = ["^/ok", "("]',
     ["agent.exclude_paths.1", "'('", "not a valid regular expression"]),
    ('[agent]\ntrusted_proxies = ["10.0.0.300/8"]',
     ["agent.trusted_proxies.0", "10.0.0.300/8", "not an IP address or CIDR network"]),
    ("[buffer]\nmax_row = 5", ["unknown key 'max_row'", "did you mean 'max_rows'?"]),
    ('[bufer]\npath = "x"', ["unknown key 'bufer'", "did you mean 'buffer'?"]),
    ("[buffer\npath = 1", ["bad.toml", "is not valid TOML"]),
])
def test_bad_values_name_the_key_the_value_and_the_expectation(text, expected):
    message = error_of(text)
    assert "bad.toml" in message
    for part in expected:
        assert part in message


def test_bad_environment_values_name_the_variable():
    message = error_of(env={"SITELOG_BUFFER_MAX_ROWS": "lots"})
    assert "buffer.max_rows" in message and "'lots'" in message
    assert "environment variable SITELOG_BUFFER_MAX_ROWS" in message
    message = error_of(env={"SITELOG_BUFFER_MAXROWS": "5"})
    assert "SITELOG_BUFFER_MAXROWS" in message and "did you mean 'max_rows'?" in message


def test_a_missing_file_is_named():
    with pytest.raises(ConfigError, match=r"nowhere\.toml does not exist"):
        load_config("nowhere.toml", env={})
    with pytest.raises(ConfigError, match=r"gone\.toml does not exist"):
        load_config(None, env={"SITELOG_CONFIG": "gone.toml"})


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_config_check_and_status_never_show_the_password(tmp_path):
    config = toml(tmp_path / "c.toml",
                  f'[buffer]\npath = "{tmp_path / "b.db"}"\n'
                  f'[mongo]\nuri = "{URI_WITH_PASSWORD}"\ntimeout_ms = 200\n')
    record = {"level": "INFO", "logger": "t", "message": "m"}  # valid, so ship must reach MongoDB
    Buffer(tmp_path / "b.db").append("logs", record)
    outputs = [
        invoke("--config", str(config), "config", "check", "--json"),
        invoke("--config", str(config), "ship", "--once", "--give-up-after", "0.3"),
        invoke("--config", str(config), "status"),
        invoke("--config", str(config), "status", "--json"),
        invoke("--config", str(config), "config", "check"),
    ]
    assert [result.exit_code for result in outputs] == [1, 1, 0, 0, 1]  # port 1: unreachable
    for result in outputs:
        assert PASSWORD not in result.output
    checked = json.loads(outputs[0].output)["settings"]
    assert checked["mongo"]["uri"] == "mongodb://sitelog:***@127.0.0.1:1/?authSource=admin"
    assert "mongodb://sitelog:***@127.0.0.1:1/" in outputs[4].output
    status = json.loads(outputs[3].output)
    assert status["mongo"] == checked["mongo"]["uri"] and status["last_ship_result"] == "error"


def test_config_check_with_a_bad_uri_does_not_print_the_password(tmp_path):
    """A typo in the scheme must not put the password on the terminal (or in a CI log)."""
    bad = URI_WITH_PASSWORD.replace("mongodb", "mongo", 1)
    config = toml(tmp_path / "c.toml", f'[mongo]\nuri = "{bad}"\n')
    result = invoke("--config", str(config), "config", "check")
    assert result.exit_code != 0 and "mongo.uri" in result.output
    assert PASSWORD not in result.output
