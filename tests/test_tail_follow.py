"""Following a log: rotation while writing, copytruncate, rotations while stopped, pauses."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from sitelog.agent.tail import FileTail, LineParser, TailConfig, TailService, compile_format
from sitelog.agent.tail.identity import Cursor, fingerprint
from sitelog.agent.tail.store import has_room, store_batch
from sitelog.buffer import Buffer
from sitelog.shipper.tail_job import install_tailers

PARSER = LineParser(compile_format("combined"))


def line(n: int) -> str:
    return (f'10.0.0.{n % 250} - - [10/Oct/2000:13:55:36 -0700] "GET /p/{n} HTTP/1.1" 200 {n} '
            f'"-" "test"\n')


def numbers(buffer: Buffer) -> list[int]:
    """The n of every /p/<n> record in the buffer, in buffer order."""
    return [int(json.loads(row.data)["path"].rsplit("/", 1)[1])
            for row in buffer.read_batch(10**7)]


def append(path: Path, first: int, last: int) -> None:
    with path.open("a") as log:
        log.writelines(line(n) for n in range(first, last))


def gzip_away(path: Path, target: Path) -> None:
    with path.open("rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()


def drain(tail: FileTail, rounds: int = 5) -> None:
    for _ in range(rounds):
        tail.poll()


STAMP = "10/Oct/2000:13:55:36 -0700"
FORMATS = {  # (format, log_format, one line of request n)
    "combined": ("combined", "", line),
    "common": ("common", "", lambda n: f'10.0.0.1 - - [{STAMP}] "GET /p/{n} HTTP/1.1" 200 {n}\n'),
    "nginx": ("nginx", '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                       '"$http_x_forwarded_for" $request_time',
              lambda n: f'10.0.0.1 [{STAMP}] "GET /p/{n} HTTP/1.1" 200 {n} "-" 0.00{n % 10}\n'),
    "apache": ("apache", r'%a %l %u %t \"%r\" %>s %b %D \"%{User-Agent}i\"',
               lambda n: f'10.0.0.1 - - [{STAMP}] "GET /p/{n} HTTP/1.1" 200 {n} {n} "ab"\n'),
    "json": ("json", "", lambda n: json.dumps({
        "time_iso8601": "2000-10-10T13:55:36-07:00", "remote_addr": "10.0.0.1",
        "request": f"GET /p/{n} HTTP/1.1", "status": "200", "body_bytes_sent": str(n)}) + "\n"),
}


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_is_followed_across_a_rotation(tmp_path, name):
    fmt, log_format, render = FORMATS[name]
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    log.write_text("".join(render(n) for n in range(300)))
    tail = FileTail(log, LineParser(compile_format(fmt, log_format)), buffer, rotate_wait=0)
    assert tail.poll() == 300
    os.rename(log, f"{log}.1")
    log.write_text("".join(render(n) for n in range(300, 500)))
    drain(tail)
    assert numbers(buffer) == list(range(500))
    records = [json.loads(row.data) for row in buffer.read_batch(500)]
    assert {(r["status"], r["ip"][:7], r["source"]) for r in records} == {(200, "10.0.0.", "tail")}
    assert [r["bytes"] for r in records] == list(range(500))
    assert buffer.dead_letters() == []


def test_lines_are_read_once_and_a_partial_line_waits_for_its_newline(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    append(log, 0, 3)
    with log.open("a") as handle:
        handle.write(line(3)[:30])
    tail = FileTail(log, PARSER, buffer)
    assert tail.poll() == 3 and tail.poll() == 0
    with log.open("a") as handle:
        handle.write(line(3)[30:])
    assert tail.poll() == 1
    cursor = json.loads(buffer.get_cursor(tail.name))
    assert cursor["offset"] == log.stat().st_size and cursor["ino"] == log.stat().st_ino
    assert numbers(buffer) == [0, 1, 2, 3]


def test_rename_and_create_while_writing_reads_every_line_once(tmp_path):
    """logrotate's default, with the server writing to the old file until it reopens."""
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    log.touch()
    total, every, done = 4000, 1000, threading.Event()

    def server() -> None:
        handle = log.open("a")
        for n in range(total):
            handle.write(line(n))
            handle.flush()
            if n % every == every - 1:  # rotate: shift old generations, rename, create
                for generation in (3, 2, 1):
                    if Path(f"{log}.{generation}").exists():
                        os.rename(f"{log}.{generation}", f"{log}.{generation + 1}")
                os.rename(log, f"{log}.1")
                log.touch()
            if n % every == 20:  # the server reopens its log a little later (SIGUSR1)
                handle.close()
                handle = log.open("a")
            time.sleep(0.001)
        handle.close()
        done.set()

    tail = FileTail(log, PARSER, buffer, rotate_wait=0.3, chunk_size=4096)
    writer = threading.Thread(target=server)
    writer.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not done.is_set() or len(numbers(buffer)) < total):
        tail.poll()
        time.sleep(0.01)
    writer.join()
    assert Counter(numbers(buffer)) == Counter(range(total))


def test_copytruncate_finishes_the_copy_then_reads_the_file_again(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    append(log, 0, 100)
    tail = FileTail(log, PARSER, buffer)
    assert tail.poll() == 100
    append(log, 100, 150)  # not read yet when logrotate copies and truncates
    shutil.copyfile(log, f"{log}.1")
    with log.open("r+") as handle:
        handle.truncate(0)
    append(log, 150, 400)  # more than was there before: only the first bytes tell
    drain(tail)
    assert numbers(buffer) == list(range(400))
    append(log, 400, 410)
    drain(tail)
    assert numbers(buffer) == list(range(410))


def test_rotations_while_stopped_are_finished_in_order_even_compressed(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    append(log, 0, 10)
    assert FileTail(log, PARSER, buffer).poll() == 10
    # The sidecar is down: two daily rotations with compress and delaycompress.
    append(log, 10, 15)
    os.rename(log, f"{log}.1")
    append(log, 15, 20)
    gzip_away(Path(f"{log}.1"), Path(f"{log}.2.gz"))
    os.rename(log, f"{log}.1")
    append(log, 20, 25)
    append(Path(f"{log}.3.gz").with_suffix(".unrelated"), 900, 901)  # not a rotation name
    restarted = FileTail(log, PARSER, buffer)
    drain(restarted)
    assert numbers(buffer) == list(range(25))
    append(log, 25, 27)
    drain(restarted)
    assert numbers(buffer) == list(range(27))


def test_truncated_and_rewritten_while_stopped(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    append(log, 0, 20)
    assert FileTail(log, PARSER, buffer).poll() == 20
    append(log, 20, 30)
    shutil.copyfile(log, f"{log}.1")
    with log.open("r+") as handle:
        handle.truncate(0)
    append(log, 30, 80)
    drain(FileTail(log, PARSER, buffer))
    assert numbers(buffer) == list(range(80))


def test_a_new_file_on_a_reused_inode_is_not_taken_for_the_old_one(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    append(log, 0, 3)
    stat = log.stat()
    old = Cursor(str(log), stat.st_dev, stat.st_ino, fingerprint(line(99).encode()),
                 len(line(99)), len(line(99)))  # what the inode held before: since deleted
    store_batch(buffer, [], (f"tail:{log}", old.dumps()))
    tail = FileTail(log, PARSER, buffer)
    drain(tail)
    assert numbers(buffer) == [0, 1, 2]  # from the start, not from the old offset
    assert buffer.stats().counters["tail_lost_files"] == 1


def test_a_file_is_known_by_its_first_whole_line_before_its_cursor_is_stored(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    log.write_text(line(0)[:20])
    tail = FileTail(log, PARSER, buffer)
    assert tail.poll() == 0 and buffer.get_cursor(tail.name) is None
    with log.open("a") as handle:
        handle.write(line(0)[20:])
    assert tail.poll() == 1
    assert json.loads(buffer.get_cursor(tail.name))["head_len"] == len(line(0))


def test_start_at_end_skips_what_is_there_and_a_missing_file_is_waited_for(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    append(log, 0, 5)
    with log.open("a") as handle:
        handle.write("partial")
    tail = FileTail(log, PARSER, buffer, start_at="end")
    assert tail.poll() == 0
    with log.open("a") as handle:
        handle.write(" line\n" + line(5))
    assert tail.poll() == 1  # the partial line before the start was left out whole
    missing = FileTail(tmp_path / "later.log", PARSER, buffer, start_at="end")
    assert missing.poll() == 0
    append(tmp_path / "later.log", 6, 8)
    assert missing.poll() == 2  # created after the start: read from its beginning
    assert numbers(buffer) == [5, 6, 7]


def test_bad_lines_go_to_the_dead_letter_table_in_the_same_batch(tmp_path):
    buffer, log = Buffer(tmp_path / "b.db"), tmp_path / "access.log"
    append(log, 0, 1)
    with log.open("ab") as handle:
        handle.write(b"not a log line \xff\n" + b"y" * 3000 + b"\n")
    append(log, 1, 2)
    tail = FileTail(log, PARSER, buffer, max_line=1000)
    assert tail.poll() == 2
    letters = buffer.dead_letters()
    assert [json.loads(letter.data) for letter in letters] == [
        "not a log line \\xff", "y" * 1000]
    offset = len(line(0))
    assert letters[0].reason == f"not UTF-8: invalid start byte at byte 15 ({log} at byte {offset})"
    assert letters[1].reason.startswith("line longer than 1000 bytes")
    assert letters[0].kind == "requests"
    counters = buffer.stats().counters
    assert counters["tail_bad_lines"] == 2 and counters["tail_lines"] == 2


def test_a_full_buffer_pauses_the_tail_without_dropping(tmp_path):
    buffer = Buffer(tmp_path / "b.db", max_rows=50, capacity_check_every=1)
    log = tmp_path / "access.log"
    append(log, 0, 300)
    tail = FileTail(log, PARSER, buffer, max_line=256, chunk_size=512,
                    room=lambda: has_room(buffer))
    tail.poll()
    first = numbers(buffer)
    assert 50 < len(first) < 70 and tail.poll() == 0
    seen = []
    for _ in range(20):  # the shipper makes room, the tail fills it again, ...
        seen += numbers(buffer)
        buffer.complete([row.seq for row in buffer.read_batch(1000)])
        tail.poll()
    assert seen == list(range(300))


def test_service_follows_a_glob_on_change_notification(tmp_path):
    buffer = Buffer(tmp_path / "b.db")
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "a.log", 0, 3)
    append(logs / "a.log.1", 100, 101)  # rotated files are not tails of their own
    entry = TailConfig(path=str(logs / "*.log"), poll_interval_seconds=600, fields={"site": "x"})
    service = TailService(buffer, [entry]).start()
    try:
        assert service.observer is not None
        wait_for(lambda: len(numbers(buffer)) == 3)
        append(logs / "b.log", 3, 5)  # a new file matching the glob is read from its start
        wait_for(lambda: len(numbers(buffer)) == 5)
    finally:
        service.stop()
    assert sorted(numbers(buffer)) == [0, 1, 2, 3, 4]
    assert json.loads(buffer.read_batch(1)[0].data)["site"] == "x"


def test_sitelog_run_installs_the_tails_and_stops_them_with_the_scheduler(tmp_path, make_config):
    base = make_config()
    log = tmp_path / "access.log"
    append(log, 0, 2)
    config = SimpleNamespace(buffer=base.buffer, agent=base.agent,
                             tail=[{"path": str(log), "poll_interval_seconds": 0.05}])
    assert install_tailers(BackgroundScheduler(), base) is None  # no [[tail]]: nothing to do
    scheduler = BackgroundScheduler()
    scheduler.start()
    service = install_tailers(scheduler, config)
    buffer = Buffer.from_config(base.buffer)
    wait_for(lambda: len(numbers(buffer)) == 2)
    scheduler.shutdown()
    assert service.stopping.is_set() and not service.thread.is_alive()


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_service_applies_agent_exclude_paths(tmp_path, make_config):
    base = make_config(agent={"exclude_paths": [r"^/p/\d*[13579]$"]})  # odd numbers
    log = tmp_path / "access.log"
    append(log, 0, 10)
    config = SimpleNamespace(buffer=base.buffer, agent=base.agent,
                             tail=[{"path": str(log), "poll_interval_seconds": 0.05}])
    service = TailService.from_config(config).start()
    buffer = Buffer.from_config(base.buffer)
    try:
        wait_for(lambda: buffer.stats().counters.get("tail_skipped") == 5)
    finally:
        service.stop()
    assert numbers(buffer) == [0, 2, 4, 6, 8]
