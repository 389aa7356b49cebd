"""One shipper per buffer: `sitelog run` holds an OS lock that a second shipper (a real second
process) is refused on, naming the lock file and the holder's pid; kill -9 releases it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sitelog.buffer import Buffer
from sitelog.shipper.lock import ShipperLock, ShipperLocked, lock_path

SITELOG = Path(sys.executable).with_name("sitelog")


@pytest.fixture
def config(tmp_path: Path, mongo_uri: str, mongo_db_name: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n'
        f'[mongo]\nuri = "{mongo_uri}"\ndb = "{mongo_db_name}"\ntimeout_ms = 3000\n'
        '[shipper]\ninterval_seconds = 0.2\n[metrics]\nenabled = false\n')
    return path


def sitelog(config: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITELOG_")}
    return subprocess.Popen([str(SITELOG), "--config", str(config), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def held_by(path: str, pid: int, timeout: float = 60) -> None:
    """Wait until process `pid` holds the lock (its pid is in the file and flock is taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(path).exists() and Path(path).read_text().strip() == str(pid):
            try:
                ShipperLock(path.removesuffix(".shipper.lock")).acquire().release()
            except ShipperLocked:
                return
        time.sleep(0.05)
    raise AssertionError(f"{pid} never took {path}")


def test_a_second_shipper_is_refused_until_the_first_is_killed(config, tmp_path):
    lock_file = lock_path(tmp_path / "buffer.db")
    daemon = sitelog(config, "run")
    try:
        held_by(lock_file, daemon.pid)
        for args in (("ship", "--once"), ("run",)):
            second = sitelog(config, *args)
            output, _ = second.communicate(timeout=60)
            assert second.returncode == 2, output
            assert lock_file in output and f"pid {daemon.pid}" in output, output
            assert "Traceback" not in output
        assert daemon.poll() is None  # the first one shipped on, undisturbed
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    after = sitelog(config, "ship", "--once")  # the kernel dropped the lock of the killed one
    output, _ = after.communicate(timeout=60)
    assert after.returncode == 0, output


def test_the_lock_is_released_and_reusable_in_process(tmp_path):
    buffer = tmp_path / "buffer.db"
    with ShipperLock(buffer) as held:
        assert Path(held.path).read_text().strip() == str(os.getpid())
        with pytest.raises(ShipperLocked, match=f"pid {os.getpid()}"):
            ShipperLock(buffer).acquire()  # a second open file description is refused too
    ShipperLock(buffer).acquire().release()


def config_at(tmp_path: Path, name: str, buffer: Path, mongo_uri: str, db: str) -> Path:
    path = tmp_path / name
    path.write_text(
        f'[buffer]\npath = "{buffer}"\n'
        f'[mongo]\nuri = "{mongo_uri}"\ndb = "{db}"\ntimeout_ms = 3000\n'
        '[shipper]\ninterval_seconds = 0.2\n[metrics]\nenabled = false\n')
    return path


@pytest.mark.parametrize("first", ["real", "symlinked file", "symlinked directory"])
def test_every_path_to_one_buffer_names_one_lock(tmp_path, mongo_uri, mongo_db_name, first):
    """A symlinked path ran a second shipper beside the first (66 records dead-lettered twice).
    Now `sitelog run` through any of three paths to one file refuses `ship --once` through the
    other two."""
    real_dir = tmp_path / "data"
    real_dir.mkdir()
    real = real_dir / "buffer.db"
    (tmp_path / "link.db").symlink_to(real)
    (tmp_path / "linkdir").symlink_to(real_dir, target_is_directory=True)
    paths = {"real": real, "symlinked file": tmp_path / "link.db",
             "symlinked directory": tmp_path / "linkdir" / "buffer.db"}
    configs = {name: config_at(tmp_path, f"{i}.toml", path, mongo_uri, mongo_db_name)
               for i, (name, path) in enumerate(paths.items())}
    Buffer(real).close()  # the file exists, so the symlink to it resolves
    daemon = sitelog(configs[first], "run")
    try:
        held_by(str(real) + ".shipper.lock", daemon.pid)
        for name, config in configs.items():
            if name == first:
                continue
            second = sitelog(config, "ship", "--once")
            output, _ = second.communicate(timeout=60)
            assert second.returncode == 2, (name, output)
            assert f"pid {daemon.pid}" in output and "Traceback" not in output, output
        assert daemon.poll() is None
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
    assert not (tmp_path / "link.db.shipper.lock").exists()


def test_a_buffer_with_a_second_hard_link_is_refused(tmp_path, mongo_uri, mongo_db_name):
    real = tmp_path / "buffer.db"
    Buffer(real).close()
    os.link(real, tmp_path / "other.db")
    for name in ("buffer.db", "other.db"):
        config = config_at(tmp_path, "c.toml", tmp_path / name, mongo_uri, mongo_db_name)
        process = sitelog(config, "ship", "--once")
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 2, output
        assert "2 names (hard links)" in output and "Traceback" not in output, output
    (tmp_path / "other.db").unlink()
    process = sitelog(config_at(tmp_path, "c.toml", real, mongo_uri, mongo_db_name),
                      "ship", "--once")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output


KILLED_SALVAGE = """
import os, sys
from sitelog.buffer import salvage
def killed(*args, **kwargs):
    os._exit(9)  # a kill -9 after the damaged file got its aside name, before the fresh one is in
salvage._write_fresh = killed
from sitelog.buffer import Buffer
Buffer(sys.argv[1], verify=True)
"""


def test_a_salvage_killed_midway_does_not_lock_the_shipper_out(tmp_path, config):
    """A salvage by rename links the damaged file to its aside name first; killed before the
    fresh file replaces it, the buffer has two names for a while. The shipper must start anyway
    (its open finishes the salvage), not refuse the file as hard-linked for ever."""
    buffer_path = tmp_path / "buffer.db"
    buffer = Buffer(buffer_path)
    buffer.append_many(("logs", 0.0, {"level": "INFO", "logger": "t", "message": f"m {n}"})
                       for n in range(500))
    buffer.close()
    with buffer_path.open("r+b") as file:  # a broken header: only a salvage by rename can help
        file.write(b"\xff" * 100)
    killed = subprocess.run([sys.executable, "-c", KILLED_SALVAGE, str(buffer_path)])
    assert killed.returncode == 9 and buffer_path.stat().st_nlink == 2
    shipped = subprocess.run([str(SITELOG), "--config", str(config), "ship", "--once"],
                             capture_output=True, text=True, timeout=120)
    assert shipped.returncode == 0, shipped.stderr
    assert buffer_path.stat().st_nlink == 1
    assert "500 shipped" in shipped.stdout + shipped.stderr
