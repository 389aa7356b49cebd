#!/usr/bin/env python3
"""Chaos run: writers through the public entry points, kill -9 of writers, shipper and server,
a full disk and a damaged buffer; then every acknowledged record is in MongoDB exactly once, or
counted as lost by the buffer.

    scripts/chaos.py --minutes 10       # the long run; its figures go in docs/benchmarks.md
    tests/test_chaos.py                 # the bounded run CI does (about two minutes)

Writers are the logging handler and the WSGI middleware, each in its own process and SIGKILLed
at random; every life appends a fresh range of numbers n. A writer prints `n` once the entry
point returned for record n with the record stored, and `d n` when the buffer refused it
(counted, by its documented rule). The shipper (`sitelog run`, which also runs the rollup job)
and the server are SIGKILLed too. The buffer lives on its own small tmpfs, so a phase can fill
the disk for real; another damages a page of the buffer outside its records table.

The accounting, checked by `verdict()`:
- no n and no (agent, seq) is in MongoDB twice, and nothing appears that no writer attempted;
- a record reported dropped (`d n`) is not in MongoDB;
- every acknowledged n is in MongoDB, except at most as many as the buffer counted as lost to
  overflow or as unreadable when it salvaged a damaged file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FERRETDB = ROOT / "scripts" / "ferretdb.sh"
SITELOG = Path(sys.executable).with_name("sitelog")
LIFE_BLOCK = 1_000_000  # each life of each writer appends n from its own block of this size
WRITERS = ("logging", "wsgi", "logging", "wsgi")
DISK_BYTES = 64 << 20  # the tmpfs the buffer lives on
MAX_BYTES = 24 << 20  # buffer.max_bytes, below the disk: the disk phase is not an overflow

CONFIG = """\
[buffer]
path = "{buffer}"
max_bytes = {max_bytes}

[mongo]
uri = "{uri}"
db = "{db}"
timeout_ms = 2000

[shipper]
interval_seconds = 0.2
batch_size = 500
retry_initial_seconds = 0.1
retry_max_seconds = 1.0

[rollup]
interval_seconds = 2

[metrics]
enabled = false

[geodb]
dir = "{geodb}"
"""


# --- the writer processes -------------------------------------------------------------------

def _wsgi_emitter(config: Any) -> Any:
    from wsgiref.util import setup_testing_defaults

    from sitelog.agent.wsgi import SitelogMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<p>ok</p>"]

    middleware = SitelogMiddleware(app, config)
    failures = middleware.recorder.failures

    def emit(n: int) -> None:
        environ: dict[str, Any] = {"PATH_INFO": f"/chaos/{n}", "REMOTE_ADDR": "192.0.2.7",
                                   "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Chaos"}
        setup_testing_defaults(environ)
        body = middleware(environ, lambda status, headers, exc_info=None: None)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()

    return emit, failures


def _logging_emitter(config: Any) -> Any:
    import logging

    from sitelog.agent.logging import SitelogHandler

    logger = logging.getLogger("chaos")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = SitelogHandler(config=config)
    logger.addHandler(handler)
    return (lambda n: logger.info("chaos %d", n)), handler.failures


def writer(kind: str, config_path: str, start: int) -> None:
    """Append n = start, start + 1, ... through one entry point; print each outcome. Runs until
    it is killed."""
    from sitelog.agent import drops
    from sitelog.config import load_config

    config = load_config(config_path)
    emit, failures = (_logging_emitter if kind == "logging" else _wsgi_emitter)(config)

    def lost() -> int:  # records the entry point refused (counted drops) or failed to store
        return sum(drops.counts().values()) + failures.count

    print("ready", flush=True)
    n = start
    while True:
        before = lost()
        emit(n)
        print(f"d {n}" if lost() > before else n, flush=True)
        n += 1
        time.sleep(0.002)


# --- the harness ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The project's FerretDB on a port of its own, so it can be killed and restarted."""

    def __init__(self, datadir: Path) -> None:
        self.datadir, self.port = datadir, free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self.kills = 0

    def start(self) -> None:
        subprocess.run([str(FERRETDB), "start", str(self.datadir), str(self.port)], check=True,
                       env={**os.environ, "PYTHON": sys.executable}, stdout=subprocess.DEVNULL)

    def kill(self) -> None:
        pid = int((self.datadir / "ferretdb.pid").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.kills += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([str(FERRETDB), "stop", str(self.datadir)], check=False,
                       stdout=subprocess.DEVNULL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    return True


@dataclass
class Lives:
    """One command kept running under random SIGKILLs, a life's output in a file of its own."""

    name: str
    argv: Any  # life -> argv
    ready: str
    workdir: Path
    rng: random.Random
    mean_life: float
    lives: int = 0
    process: subprocess.Popen[bytes] | None = None
    output: Path | None = None
    kill_at: float | None = None
    outputs: list[Path] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)

    def step(self, now: float) -> None:
        if self.process is None:
            self.output = self.workdir / f"{self.name}-{self.lives}.out"
            env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
            with self.output.open("wb") as out:
                self.process = subprocess.Popen(self.argv(self.lives), stdout=out,
                                                stderr=subprocess.STDOUT, env=env)
            self.outputs.append(self.output)
            self.kill_at = None
            return
        if self.process.poll() is not None:  # only our SIGKILL may end a life: note, restart
            tail = self.output.read_text(errors="replace")[-1000:]
            self.exits.append(f"{self.name} exited by itself ({self.process.returncode}): {tail}")
            self.process = None
            self.lives += 1
            return
        if self.kill_at is None and self.ready in self.output.read_text(errors="replace"):
            self.kill_at = now + self.rng.expovariate(1 / self.mean_life)
        if self.kill_at is not None and now >= self.kill_at:
            self.end()

    def end(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None
            self.lives += 1


class Disk:
    """A small tmpfs for the buffer, so a phase can fill it; None where mounting is refused."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    @classmethod
    def mount(cls, path: Path) -> Disk | None:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs",
                               str(path)], capture_output=True)
        return cls(path) if done.returncode == 0 else None

    def fill(self) -> int:
        """Take every free byte; returns how many."""
        taken = 0
        with self.filler.open("ab", buffering=0) as out:
            for size in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        taken += out.write(b"\0" * size) or 0
        return taken

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def damage_outside_records(buffer: Path, rng: random.Random) -> str:
    """Overwrite one checkpointed page that belongs to no records table or index of records."""
    conn = sqlite3.connect(buffer, timeout=10)
    try:
        for _ in range(50):
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                break
            time.sleep(0.1)
        pages = conn.execute("SELECT name, pageno FROM dbstat WHERE name NOT LIKE 'records%' "
                             "AND name NOT LIKE 'sqlite_%' AND pageno > 1").fetchall()
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    name, page = rng.choice(pages)
    with buffer.open("r+b") as db:
        db.seek((page - 1) * size)
        db.write(rng.randbytes(size))
    return f"page {page} of {name}"


@dataclass
class Outcome:
    """What the writers reported: acknowledged, refused and unconfirmed (the one n after a
    life's last report, which the kill may have caught committed or not)."""

    acknowledged: set[int] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)
    unconfirmed: set[int] = field(default_factory=set)

    def read(self, output: Path, start: int) -> None:
        last = start - 1
        for line in output.read_text(errors="replace").splitlines(keepends=True):
            if not line.endswith("\n"):
                continue
            word = line.split()
            if len(word) == 1 and word[0].isdigit():
                self.acknowledged.add(int(word[0]))
                last = int(word[0])
            elif len(word) == 2 and word[0] == "d" and word[1].isdigit():
                self.dropped.add(int(word[1]))
                last = int(word[1])
        self.unconfirmed.add(last + 1)


def in_mongo(uri: str, db: str) -> tuple[Counter[int], Counter[tuple[str, int]]]:
    """Every n in MongoDB (from logs' messages and requests' paths) and every (agent, seq)."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=20_000)
    numbers: Counter[int] = Counter()
    rows: Counter[tuple[str, int]] = Counter()
    try:
        for doc in client[db].logs.find({"logger": "chaos"}, {"message": 1, "agent": 1, "seq": 1}):
            numbers[int(doc["message"].split()[1])] += 1
            rows[(doc["agent"], doc["seq"])] += 1
        for doc in client[db].requests.find({}, {"path": 1, "agent": 1, "seq": 1}):
            numbers[int(doc["path"].rsplit("/", 1)[1])] += 1
            rows[(doc["agent"], doc["seq"])] += 1
    finally:
        client.close()
    return numbers, rows


def lost_by_count(counters: dict[str, int]) -> int:
    """Records the buffer counted as gone from it unshipped: overflow and salvage losses."""
    return sum(value for name, value in counters.items()
               if name.startswith("dropped_oldest") or name.startswith("unreadable"))


def verdict(outcome: Outcome, numbers: Counter[int], rows: Counter[tuple[str, int]],
            counters: dict[str, int]) -> list[str]:
    """What broke the accounting rule (see the module docstring); empty when it held."""
    problems = []
    twice = sorted(n for n, count in numbers.items() if count > 1)
    if twice:
        problems.append(f"{len(twice)} n in MongoDB more than once, e.g. {twice[:5]}")
    rows_twice = [key for key, count in rows.items() if count > 1]
    if rows_twice:
        problems.append(f"{len(rows_twice)} (agent, seq) twice, e.g. {rows_twice[:5]}")
    attempted = outcome.acknowledged | outcome.dropped | outcome.unconfirmed
    stray = sorted(set(numbers) - attempted)
    if stray:
        problems.append(f"{len(stray)} records nobody wrote, e.g. {stray[:5]}")
    back = sorted(outcome.dropped & set(numbers))
    if back:
        problems.append(f"{len(back)} records reported dropped are in MongoDB, e.g. {back[:5]}")
    missing = sorted(outcome.acknowledged - set(numbers))
    if len(missing) > lost_by_count(counters):
        problems.append(f"{len(missing)} acknowledged records missing, but the buffer counted "
                        f"only {lost_by_count(counters)} lost: e.g. {missing[:5]}")
    return problems


def buffer_counters(config: Path) -> tuple[dict[str, int], list[str]]:
    """The buffer's counters after the drain, or a problem if they cannot be read."""
    from sitelog.buffer import Buffer
    from sitelog.config import load_config

    try:
        buffer = Buffer.from_config(load_config(str(config)).buffer)
        try:
            return dict(buffer.stats().counters), []
        finally:
            buffer.close()
    except sqlite3.Error as exc:
        return {}, [f"the buffer's counters cannot be read after the drain: {exc}"]


def run(seconds: float, workdir: Path, seed: int | None = None, uri: str | None = None,
        log: Any = print) -> dict[str, Any]:
    """The whole run; returns its figures, with "problems" empty when the accounting held.

    With `uri` (a server this run must not kill) the server phase is left out; without root
    (no tmpfs) the full-disk phase is.
    """
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    server = None if uri else Server(workdir / "ferretdb")
    disk = Disk.mount(workdir / "disk")
    try:
        if server:
            server.start()
        return _run(seconds, workdir, seed, rng, server, disk, uri or server.uri, log)
    finally:
        if server:
            server.stop()
        if disk:
            disk.unmount()


def _run(seconds: float, workdir: Path, seed: int, rng: random.Random, server: Server | None,
         disk: Disk | None, uri: str, log: Any) -> dict[str, Any]:
    buffer = (disk.path if disk else workdir) / "buffer.db"
    db = f"chaos_{seed}"
    config = workdir / "config.toml"
    config.write_text(CONFIG.format(buffer=buffer, max_bytes=MAX_BYTES, db=db, uri=uri,
                                    geodb=workdir / "geodb"))
    phases: list[str] = []
    writers = [Lives(f"writer{i}-{kind}", _writer_argv(kind, config, i), "ready\n", workdir,
                     rng, 2.0) for i, kind in enumerate(WRITERS)]
    shipper = Lives("shipper", lambda _: [str(SITELOG), "--config", str(config), "run"],
                    "sitelog: shipping", workdir, rng, 3.0)
    begin = time.monotonic()
    plan = [(0.25, "server"), (0.45, "disk full"), (0.6, "disk back"), (0.75, "damage")]
    next_listing = 0.0
    try:
        while (elapsed := time.monotonic() - begin) < seconds:
            for lives in (*writers, shipper):
                lives.step(time.monotonic())
            if elapsed >= next_listing:  # what takes the buffer's disk, for a failed run's reader
                next_listing = elapsed + 10.0
                log(f"chaos: {elapsed:6.1f}s files: {listing(buffer.parent)}")
            while plan and elapsed >= plan[0][0] * seconds:
                name = plan.pop(0)[1]
                phases.append(_phase(name, server, disk, buffer, rng))
                log(f"chaos: {elapsed:6.1f}s {phases[-1]}")
            time.sleep(0.01)
    finally:
        for lives in (*writers, shipper):
            lives.end()
        if disk:
            disk.free()
    outcome = Outcome()
    for i, lives in enumerate(writers):
        for life, output in enumerate(lives.outputs):
            outcome.read(output, _start(i, life))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    drain = subprocess.run([str(SITELOG), "--config", str(config), "ship", "--once"],
                           capture_output=True, text=True, timeout=600, env=env)
    counters, unreadable = buffer_counters(config)
    numbers, rows = in_mongo(uri, db)
    return {
        "seed": seed, "seconds": round(time.monotonic() - begin, 1), "phases": phases,
        "writer_kills": sum(lives.lives for lives in writers), "shipper_kills": shipper.lives,
        "server_kills": server.kills if server else 0,
        "acknowledged": len(outcome.acknowledged), "reported_dropped": len(outcome.dropped),
        "in_mongo": len(numbers), "acknowledged_missing": len(outcome.acknowledged - set(numbers)),
        "counters": counters, "drain_rc": drain.returncode,
        "problems": verdict(outcome, numbers, rows, counters) + unreadable
        + [exit for lives in (*writers, shipper) for exit in lives.exits]
        + ([f"final ship failed: {drain.stderr[-2000:]}"] if drain.returncode else []),
    }


def listing(directory: Path) -> str:
    """name=KiB of each file in `directory`, largest first."""
    sizes = {}
    for path in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):
            sizes[path.name] = path.stat().st_size // 1024
    return " ".join(f"{name}={kib}K" for name, kib in sorted(sizes.items(), key=lambda i: -i[1]))


def _start(writer_index: int, life: int) -> int:
    return (writer_index * 10_000 + life + 1) * LIFE_BLOCK


def _writer_argv(kind: str, config: Path, index: int) -> Any:
    return lambda life: [sys.executable, str(Path(__file__).resolve()), "writer", kind,
                         str(config), str(_start(index, life))]


def _phase(name: str, server: Server | None, disk: Disk | None, buffer: Path,
           rng: random.Random) -> str:
    if name == "server":
        if server is None:
            return "server: left out (a server this run must not kill)"
        server.kill()
        time.sleep(rng.uniform(1.0, 3.0))
        server.start()
        return "server: SIGKILLed and restarted"
    if name == "disk full":
        return f"disk: filled ({disk.fill()} bytes taken)" if disk else "disk: left out (no tmpfs)"
    if name == "disk back":
        if disk:
            disk.free()
        return "disk: space back" if disk else "disk: left out"
    try:
        return f"damage: {damage_outside_records(buffer, rng)}"
    except sqlite3.Error as exc:
        return f"damage: not done, the buffer could not be checkpointed ({exc})"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "writer":
        writer(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--mongo-uri", default=None, help="a server not to kill (skips that phase)")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sitelog-chaos-") as tmp:
        figures = run(args.minutes * 60, args.workdir or Path(tmp), args.seed, args.mongo_uri)
    print(json.dumps(figures, indent=2))
    sys.exit(1 if figures["problems"] else 0)


if __name__ == "__main__":
    main()
