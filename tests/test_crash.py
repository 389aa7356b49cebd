"""kill -9 of the writer and of the shipper at random moments, many times: exactly once holds."""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import crash_writer
import pytest

from sitelog.buffer import Buffer
from sitelog.cli import main as cli_main

SITELOG = Path(sys.executable).with_name("sitelog")
ROUNDS = 25  # SIGKILLs of each process
ID_BLOCK = 1_000_000  # round r's writer appends ids r * ID_BLOCK, r * ID_BLOCK + 1, ...
TIME_BUDGET = 60.0  # seconds for the kill rounds; the test stops early rather than run longer

CONFIG = """\
[buffer]
path = "{buffer}"
durability = "process"

[mongo]
uri = "{uri}"
db = "{db}"
timeout_ms = 3000

[shipper]
interval_seconds = 0.05
batch_size = 10
retry_initial_seconds = 0.05
retry_max_seconds = 0.2
"""


def confirmed_ids(output: Path) -> list[int]:
    """The ids the writer printed, i.e. whose append had returned (committed)."""
    lines = output.read_text().splitlines(keepends=True)
    return [int(line) for line in lines if line.endswith("\n") and line.strip().isdigit()]


def _in_child(output: str, function: Callable[..., object], *args: object) -> None:
    """Child entry point: stdout and stderr to `output`, no SITELOG_* overrides, then run."""
    for name in [name for name in os.environ if name.startswith("SITELOG_")]:
        del os.environ[name]
    fd = os.open(output, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    function(*args)


def _sitelog(args: list[str]) -> None:
    """The `sitelog` command line, as its console script runs it."""
    cli_main(args)


def _forkserver() -> multiprocessing.context.BaseContext:
    """Children forked from a server that imported sitelog once, so a life starts in ms, not the
    seconds a fresh interpreter needs (which would leave little time for work between kills)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sitelog.cli", "sitelog.shipper.daemon", "crash_writer"])
    return context


class Restarted:
    """One process kept running under random SIGKILLs: each life ends at a random moment.

    Most lives are killed a random time after the process said it is ready (it is then doing
    real work); some at a random time after start, which may land in its start-up.
    """

    def __init__(self, name: str, target: Callable[[int], tuple[object, ...]], ready_mark: str,
                 workdir: Path, rng: random.Random) -> None:
        self.name, self.target, self.ready_mark = name, target, ready_mark
        self.workdir, self.rng = workdir, rng
        self.context = _forkserver()
        self.lives = 0
        self.process: multiprocessing.process.BaseProcess | None = None
        self.output = workdir
        self.kill_at: float | None = None

    def start(self) -> None:
        self.output = self.workdir / f"{self.name}-{self.lives}.out"
        self.output.touch()
        process = self.context.Process(
            target=_in_child, args=(str(self.output), *self.target(self.lives)), daemon=True
        )
        process.start()
        self.process = process
        early = self.rng.random() < 0.2
        self.kill_at = time.monotonic() + self.rng.uniform(0.0, 0.1) if early else None

    def step(self) -> tuple[int, Path] | None:
        """Start, arm or kill as due; returns (life, output) of a life that just ended."""
        if self.process is None:
            self.start()
            return None
        if not self.process.is_alive():  # it must only ever die of our SIGKILL
            raise AssertionError(f"{self.name} exited by itself ({self.process.exitcode}):\n"
                                 + self.output.read_text()[-3000:])
        now = time.monotonic()
        if self.kill_at is None and self.ready_mark in self.output.read_text():
            self.kill_at = now + self.rng.uniform(0.0, 1.0)
        if self.kill_at is None or now < self.kill_at:
            return None
        return self.end()

    def end(self) -> tuple[int, Path] | None:
        """SIGKILL the running process, if any; returns (life, output) of the life it ended."""
        if self.process is None:
            return None
        self.process.kill()  # SIGKILL
        self.process.join(30)
        self.process = None
        self.lives += 1
        return self.lives - 1, self.output


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_of_writer_and_shipper_never_loses_or_duplicates_a_record(
    tmp_path, mongo_uri, mongo_db_name, mongo
):
    """Exactly once, made precise for a writer that may die between its commit and its report.

    Every id n is appended by at most one append call (each life of the writer starts a fresh
    id range), and the writer prints n only after append(n) returned, i.e. after the commit. So:

    - confirmed C: every printed n, which is committed and must reach MongoDB;
    - unconfirmed U: per life, the one id after the last printed one, which may or may not have
      been committed before the kill; it may be in MongoDB, at most once;
    - nothing else may appear.

    The writer (tests/crash_writer.py) and the shipper (`sitelog --config ... run`, through the
    CLI's entry point) are separate processes, forked from a preloaded forkserver, killed and
    restarted independently, ROUNDS times each. Then a clean ``sitelog ship --once`` runs,
    after which every (agent, seq) and every n is in MongoDB exactly once, C <= ids <= C | U,
    and the buffer is empty (no dead letters, no drops). The shipper's kills land anywhere,
    including between insert_many and the delete, which the deterministic _id turns into
    duplicate-key no-ops on the next run.
    """
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random seed {seed}")
    rng = random.Random(seed)
    buffer_path = tmp_path / "buffer.db"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(buffer=buffer_path, uri=mongo_uri, db=mongo_db_name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    writer = Restarted(
        "writer", lambda life: (crash_writer.main, str(config), life * ID_BLOCK),
        "ready\n", tmp_path, rng,
    )
    shipper = Restarted(
        "shipper", lambda _: (_sitelog, ["--config", str(config), "run"]),
        "sitelog: shipping", tmp_path, rng,
    )
    confirmed: set[int] = set()
    unconfirmed: set[int] = set()

    def account(ended: tuple[int, Path] | None) -> None:
        if ended is not None:
            life, output = ended
            printed = confirmed_ids(output)
            confirmed.update(printed)
            unconfirmed.add(printed[-1] + 1 if printed else life * ID_BLOCK)

    budget = time.monotonic() + TIME_BUDGET
    try:
        while time.monotonic() < budget and min(writer.lives, shipper.lives) < ROUNDS:
            account(writer.step() if writer.lives < ROUNDS else writer.end())
            shipper.step() if shipper.lives < ROUNDS else shipper.end()
            time.sleep(0.005)
    finally:
        account(writer.end())
        shipper.end()
    assert min(writer.lives, shipper.lives) >= 10, "too few kill rounds fit in the time budget"
    shipped_during_rounds = mongo.logs.count_documents({})
    final = subprocess.run(
        [str(SITELOG), "--config", str(config), "ship", "--once"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert final.returncode == 0, final.stderr

    docs = list(mongo.logs.find({}, {"n": 1, "seq": 1, "agent": 1}))
    ids = Counter(doc["n"] for doc in docs)
    by_row = Counter((doc["agent"], doc["seq"]) for doc in docs)
    assert len({doc["agent"] for doc in docs}) == 1
    assert [key for key, count in by_row.items() if count > 1] == []
    assert [n for n, count in ids.items() if count > 1] == []
    assert sorted(confirmed - set(ids)) == [], "confirmed records were lost"
    assert sorted(set(ids) - confirmed - unconfirmed) == [], "records nobody wrote appeared"
    stats = Buffer(buffer_path).stats()
    assert (stats.rows, stats.dead_letters) == (0, 0)
    assert not {name for name in stats.counters if name.startswith("dropped")}
    assert shipped_during_rounds > 0, "the shipper never shipped while being killed"
    print(f"{writer.lives} writer and {shipper.lives} shipper kills, {len(confirmed)} confirmed, "
          f"{len(ids)} in MongoDB, {shipped_during_rounds} shipped before the final run; "
          f"{final.stdout.strip()}")
