"""The bounded chaos run (scripts/chaos.py): writers through the logging handler and the WSGI
middleware, kill -9 of writers, shipper and server, a full disk and a damaged page; afterwards
every acknowledged record is in MongoDB exactly once, or counted as lost by the buffer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import chaos

SECONDS = 75.0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_chaos_loses_nothing_it_did_not_count(tmp_path):
    real_mongo = os.environ.get("SITELOG_TEST_MONGO_URI")
    figures = chaos.run(SECONDS, tmp_path, uri=real_mongo, log=lambda line: print(line))
    print(figures)
    assert figures["problems"] == []
    assert figures["writer_kills"] >= 20 and figures["shipper_kills"] >= 5
    assert figures["acknowledged"] > 1000
    if not real_mongo:
        assert figures["server_kills"] == 1
    if os.geteuid() == 0:  # the disk and damage phases need the tmpfs only root may mount
        assert any(phase.startswith("disk: filled") for phase in figures["phases"])
        assert any(phase.startswith("damage: page") for phase in figures["phases"])
