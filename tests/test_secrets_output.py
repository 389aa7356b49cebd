"""No CLI output shows a planted secret: every command, stdout, stderr and log lines, run as a
user runs them (a subprocess), with a visitor secret and MongoDB passwords planted in the config.

One password is written with a raw `/` (a URI a user may well type), one percent-encoded.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from sitelog.redaction import (
    MASK,
    RedactingFilter,
    redact,
    redact_data,
    redact_uri,
    register,
    uri_password,
)

VISITOR_SECRET = "PLANTED-visitor-secret-7b1c"
RAW_PASSWORD = "PLANTED/raw-pw-19af"  # a raw slash: not a valid URI for pymongo, shown before
ENCODED_PASSWORD = "PLANTED@enc/pw-42c0"
LICENSE_KEY = "PLANTED-license-5e5e"
SECRETS = [VISITOR_SECRET, RAW_PASSWORD, ENCODED_PASSWORD, quote(ENCODED_PASSWORD, safe=""),
           LICENSE_KEY, "raw-pw-19af", "enc/pw-42c0"]


def write_config(tmp_path: Path, uri: str, visitor: str = "") -> Path:
    path = tmp_path / f"config-{abs(hash((uri, visitor)))}.toml"
    path.write_text(
        f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n'
        f'[mongo]\nuri = "{uri}"\ntimeout_ms = 300\n'
        f'[geodb]\ndir = "{tmp_path / "geodb"}"\n'
        f'[visitor]\nenabled = true\nsecret = "{VISITOR_SECRET}"\n{visitor}'
        '[logging]\nlevel = "DEBUG"\n')
    return path


def sitelog(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Exit status and everything the command printed (stdout and stderr, logs included)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    done = subprocess.run([sys.executable, "-c", "from sitelog.cli import main; main()",
                           "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**clean, "MAXMIND_LICENSE_KEY": LICENSE_KEY, **(env or {})})
    return done.returncode, done.stdout + done.stderr


COMMANDS = [
    ("config", "check"), ("config", "check", "--json"), ("status",), ("status", "--json"),
    ("ship", "--once", "--give-up-after", "0"),
    ("status", "--json"), ("dead-letters", "list"), ("setup-schema",), ("geoip", "info"),
    ("report", "--json"),
]


def test_no_command_prints_a_planted_secret(tmp_path, mongo_uri):
    host = mongo_uri.removeprefix("mongodb://").rstrip("/")
    uris = [f"mongodb://reader:{RAW_PASSWORD}@127.0.0.1:9/",  # raw slash, nothing listening
            f"mongodb://reader:{quote(ENCODED_PASSWORD, safe='')}@{host}/"]  # the test server
    outputs = {}
    for n, uri in enumerate(uris):
        config = write_config(tmp_path, uri)
        for command in COMMANDS:
            outputs[n, command] = sitelog(config, *command)
    # A config error in [visitor] echoes the whole section; a bad URI from the environment.
    broken = write_config(tmp_path, uris[1], 'samesite = "None"\nsecure = "never"\n')
    outputs["bad visitor section"] = sitelog(broken, "config", "check")
    bad_env = {"SITELOG_MONGO_URI": f"http://reader:{RAW_PASSWORD}@example.org/"}
    outputs["bad env URI"] = sitelog(broken, "status", env=bad_env)
    for command, (_, output) in outputs.items():
        leaked = [secret for secret in SECRETS if secret in output]
        assert not leaked, (command, leaked, output[-2_000:])
    # The raw slash is refused with a clear message (pymongo would refuse it at connect time).
    status, output = outputs[0, ("config", "check")]
    assert status == 2 and "raw '/'" in output and f"reader:{MASK}@127.0.0.1:9/" in output
    status, output = outputs[1, ("config", "check", "--json")]
    checks = {c["name"]: c["status"] for c in json.loads(output)["checks"]}
    assert status == (1 if "failed" in checks.values() else 0), output
    assert f'"secret": "{MASK}"' in output and f"reader:{MASK}@" in output
    status, output = outputs[1, ("ship", "--once", "--give-up-after", "0")]
    assert status in (0, 1) and "Traceback" not in output
    status, output = outputs["bad visitor section"]
    assert status == 2 and "samesite" in output and MASK in output
    assert outputs["bad env URI"][0] == 2


def test_redact_uri_hides_a_password_with_raw_reserved_characters():
    for password in ["pa/ss", "pa?ss", "p@ss", "p:ss", "pa%2Fss", "pa/ss@x"]:
        uri = f"mongodb://user:{password}@db1.example:27017,db2.example/sitelog?tls=true"
        shown = redact_uri(uri)
        assert password not in shown and shown.startswith(f"mongodb://user:{MASK}@"), shown
        assert uri_password(uri) == password
    assert redact_uri("mongodb://db.example/sitelog") == "mongodb://db.example/sitelog"
    assert redact_uri("mongodb://user@db.example/") == "mongodb://user@db.example/"


def test_redact_masks_registered_secrets_and_uris_in_free_text():
    register("s3cret-value", "abc")  # too short to scrub from free text
    text = ("failed: mongodb://u:pw/1@host/ said s3cret-value; "
            "'http://x:y@z' and abc stay readable")
    assert redact(text) == (f"failed: mongodb://u:{MASK}@host/ said {MASK}; "
                            f"'http://x:{MASK}@z' and abc stay readable")
    data = {"visitor": {"secret": "tiny", "enabled": True}, "mongo": {"uri": "mongodb://a:b@c"}}
    assert redact_data(data) == {"visitor": {"secret": MASK, "enabled": True},
                                 "mongo": {"uri": f"mongodb://a:{MASK}@c"}}
    assert redact_data({"secret": "tiny"}, ("visitor",)) == {"secret": MASK}


def test_log_records_are_redacted(caplog):
    register("logged-secret-99")
    logger = logging.getLogger("sitelog.test.redaction")
    caplog.handler.addFilter(RedactingFilter())
    try:
        logger.warning("connecting to %s with %s", "mongodb://u:pw@h", "logged-secret-99")
        try:
            raise RuntimeError("boom logged-secret-99")
        except RuntimeError:
            logger.exception("failed")
    finally:
        caplog.handler.removeFilter(caplog.handler.filters[-1])
    assert "logged-secret-99" not in caplog.text and ":pw@" not in caplog.text
    assert f"mongodb://u:{MASK}@h" in caplog.text


@pytest.mark.parametrize("uri", ["mongodb://u:p/w@h", "http://u:pw@h"])
def test_status_json_of_the_library_is_redacted(tmp_path, uri):
    from sitelog.buffer import Buffer
    from sitelog.cli.core import status_data
    from sitelog.config import Config

    config = Config.model_validate({"buffer": {"path": str(tmp_path / "b.db")},
                                    "geodb": {"dir": str(tmp_path / "g")}})
    config.mongo.__dict__["uri"] = uri  # as a value that bypassed validation would be
    data = status_data(Buffer(tmp_path / "b.db").stats(), config)
    assert data["mongo"] == f"{uri.split(':')[0]}://u:{MASK}@h"


def test_a_section_error_never_echoes_the_secret():
    """`section()` (the agent's and Django's way to read [visitor]) echoed the whole section."""
    from types import SimpleNamespace

    from sitelog.config import ConfigError, VisitorConfig, section

    bad = SimpleNamespace(visitor={"secret": VISITOR_SECRET, "samesite": "None",
                                   "secure": "never"})
    with pytest.raises(ConfigError) as raised:
        section(bad, "visitor", VisitorConfig)
    assert VISITOR_SECRET not in str(raised.value) and "samesite" in str(raised.value)
