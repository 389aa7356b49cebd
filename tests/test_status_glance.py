"""`sitelog status` reads the buffer through buffer/glance.py: the same counts as the exact
Buffer.stats() while records leave oldest first, without writing, and with a cost that does not
grow with the backlog (counted in SQLite virtual-machine steps, not in seconds)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from sitelog.buffer import Buffer, DeadLetter
from sitelog.buffer.glance import glance
from sitelog.cli import main


def vm_steps(monkeypatch: pytest.MonkeyPatch, call) -> int:  # type: ignore[no-untyped-def]
    """SQLite virtual-machine instructions run by `call` on connections it opens."""
    steps = [0]
    connect = sqlite3.connect

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = connect(*args, **kwargs)
        conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 1)
        return conn

    with monkeypatch.context() as patch:
        patch.setattr(sqlite3, "connect", counting)
        call()
    return steps[0]


def fill(buffer: Buffer, plain: int, packed: int, start: float = 1000.0) -> None:
    buffer.append_many(("logs", start + i, {"message": f"m{i}"}) for i in range(plain))
    buffer.append_packed("requests", [(start + plain + i, json.dumps({"path": f"/{i}"}))
                                      for i in range(packed)], pack_size=250)


def same_as_stats(buffer: Buffer, path: Path) -> None:
    """The exact figures; the oldest record is the next one to ship (a requeued dead letter keeps
    its capture time and waits at the back, so it can be older)."""
    exact, seen = buffer.stats(), glance(path)
    assert seen is not None
    assert (seen.rows, seen.dead_letters) == (exact.rows, exact.dead_letters)
    assert seen.oldest_ts == buffer.read_batch(1)[0].ts
    assert (seen.agent_id, seen.counters, seen.meta) == (exact.agent_id, exact.counters, exact.meta)


def test_glance_agrees_with_the_exact_stats_as_records_leave_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buffer = Buffer(path)
    assert glance(path).rows == 0  # type: ignore[union-attr]
    fill(buffer, plain=30, packed=600)
    same_as_stats(buffer, path)
    batch = buffer.read_batch(400)  # 30 plain records and whole packs, as the shipper reads
    dead = [DeadLetter(r.seq, r.kind, r.ts, r.data, "refused") for r in batch[:5]]
    buffer.complete([r.seq for r in batch[5:]], dead, {"shipped": len(batch) - 5})
    same_as_stats(buffer, path)
    buffer.drop_oldest(7)
    same_as_stats(buffer, path)
    buffer.retry_dead_letters()
    same_as_stats(buffer, path)


def test_glance_creates_nothing_and_writes_nothing(tmp_path: Path) -> None:
    assert glance(tmp_path / "none.db") is None
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "b.db"
    buffer = Buffer(path)
    fill(buffer, plain=3, packed=0)
    buffer.close()
    before = path.read_bytes()
    glance(path)
    assert path.read_bytes() == before


def test_glance_costs_the_same_at_any_backlog(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    glanced, exact = [], []
    for size in (1_000, 20_000):
        path = tmp_path / f"{size}.db"
        fill(Buffer(path), plain=size, packed=size)
        glanced.append(vm_steps(monkeypatch, lambda path=path: glance(path)))
        exact.append(vm_steps(monkeypatch, lambda path=path: Buffer(path).stats()))
    assert glanced[0] > 0 and glanced[1] == glanced[0], glanced
    assert exact[1] > 10 * exact[0], exact  # the measure sees a scan: the exact count has one


def test_status_in_an_empty_directory_creates_no_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SITELOG_CONFIG", "SITELOG_BUFFER_PATH", "SITELOG_GEODB_DIR"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["status", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == 0
    assert list(tmp_path.iterdir()) == []
