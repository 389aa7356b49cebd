"""Shared fixtures: a real MongoDB-wire server and configs pointing at temporary buffers.

The server is $SITELOG_TEST_MONGO_URI (a real MongoDB) when set, else FerretDB built from source.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from sitelog.config import Config

ROOT = Path(__file__).resolve().parent.parent
FERRETDB = ROOT / "scripts" / "ferretdb.sh"
REAL_MONGO_URI = os.environ.get("SITELOG_TEST_MONGO_URI")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FerretDB:
    """A FerretDB server of the project's own build, on a loopback port, stoppable mid-test."""

    def __init__(self, datadir: Path, port: int | None = None) -> None:
        self.datadir = datadir
        self.port = port or free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/"

    def _script(self, *args: str) -> None:
        env = {**os.environ, "PYTHON": sys.executable}
        subprocess.run([str(FERRETDB), *args], check=True, env=env, stdout=subprocess.DEVNULL)

    def start(self) -> FerretDB:
        self._script("start", str(self.datadir), str(self.port))
        return self

    def stop(self) -> None:
        self._script("stop", str(self.datadir))


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test server: $SITELOG_TEST_MONGO_URI (a real MongoDB) or a FerretDB started once."""
    if REAL_MONGO_URI:
        yield REAL_MONGO_URI
        return
    server = FerretDB(tmp_path_factory.mktemp("ferretdb")).start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def mongo_db_name() -> str:
    return f"sitelog_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mongo(mongo_uri: str, mongo_db_name: str) -> Iterator[Any]:
    """A fresh database on the test server, dropped afterwards."""
    client: MongoClient = MongoClient(mongo_uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
    try:
        yield client[mongo_db_name]
    finally:
        client.drop_database(mongo_db_name)
        client.close()


@pytest.fixture
def make_config(tmp_path: Path, mongo_uri: str, mongo_db_name: str) -> Callable[..., Config]:
    """Build a Config for this test: temp buffer, test database; sections overridable."""

    def make(**sections: dict[str, Any]) -> Config:
        data: dict[str, Any] = {
            "buffer": {"path": str(tmp_path / "buffer.db")},
            "mongo": {"uri": mongo_uri, "db": mongo_db_name, "timeout_ms": 3000},
            # Tests of capture and shipping check records as captured; enrichment tests opt in.
            "shipper": {"retry_initial_seconds": 0.05, "retry_max_seconds": 0.5, "enrich": []},
            "rollup": {"enabled": False},  # tests of the rollup job opt in
            "geodb": {"dir": str(tmp_path / "geodb")},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return Config.model_validate(data)

    return make


def requires_real_mongo(reason: str) -> pytest.MarkDecorator:
    """Skip unless the tests run against a real MongoDB (FerretDB lacks the feature)."""
    return pytest.mark.skipif(
        not REAL_MONGO_URI,
        reason=f"{reason}; FerretDB lacks it: set SITELOG_TEST_MONGO_URI to a real MongoDB to run",
    )
