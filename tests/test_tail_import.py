"""`sitelog import`: old logs (plain and compressed) into the buffer, with resume and no repeats."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections import Counter
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sitelog.agent.tail import LineParser, compile_format, import_file
from sitelog.buffer import Buffer
from sitelog.cli import main
from sitelog.cli.tail import import_cmd

# `sitelog` with the import command, whether or not sitelog.cli registers it yet.
SITELOG = click.Group("sitelog", commands={**main.commands, "import": import_cmd},
                      params=main.params, callback=main.callback)


def line(n: int) -> str:
    return (f'198.51.100.{n % 250} - - [10/Oct/2000:13:55:36 -0700] "GET /p/{n} HTTP/1.1" 200 '
            f'{n} "-" "import"\n')


def text(first: int, last: int) -> bytes:
    return "".join(line(n) for n in range(first, last)).encode()


def numbers(buffer: Buffer) -> list[int]:
    return [int(json.loads(row.data)["path"].rsplit("/", 1)[1])
            for row in buffer.read_batch(10**6)]


@pytest.fixture
def cli(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n')

    def run(*args: str):
        return CliRunner().invoke(SITELOG, ["--config", str(config), "import", *args])

    return run, Buffer(tmp_path / "buffer.db")


def test_import_plain_and_compressed_files_once(tmp_path, cli):
    run, buffer = cli
    plain = tmp_path / "access.log.4"
    plain.write_bytes(text(0, 100) + b"garbage\n")
    (tmp_path / "access.log.3.gz").write_bytes(gzip.compress(text(100, 200)))
    (tmp_path / "access.log.2.bz2").write_bytes(bz2.compress(text(200, 300)))
    (tmp_path / "access.log.1.xz").write_bytes(lzma.compress(text(300, 400)))
    files = [str(plain), *(str(tmp_path / name) for name in
                           ("access.log.3.gz", "access.log.2.bz2", "access.log.1.xz"))]
    result = run(*files, "--field", "site=old")
    assert result.exit_code == 0, result.output
    assert f"{plain}: 100 records, 1 bad lines (dead-lettered), 0 skipped" in result.output
    assert numbers(buffer) == list(range(400))
    assert json.loads(buffer.read_batch(1)[0].data)["site"] == "old"
    assert json.loads(buffer.dead_letters()[0].data) == "garbage"
    again = run(*files)
    assert again.exit_code == 0 and again.output.count("already imported") == 4
    assert len(numbers(buffer)) == 400


def test_an_interrupted_import_resumes_where_it_stopped(tmp_path, cli):
    run, buffer = cli
    log = tmp_path / "old.log.gz"
    log.write_bytes(gzip.compress(text(0, 3000)))
    batches = 0

    def interrupt(_done: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_file(buffer, log, LineParser(compile_format("combined")), max_line=1024,
                    chunk_size=4096, progress=interrupt)
    assert 0 < len(numbers(buffer)) < 3000
    result = run(str(log))
    assert result.exit_code == 0 and "resumed at byte" in result.output
    assert Counter(numbers(buffer)) == Counter(range(3000))


def test_import_format_errors_are_reported(tmp_path, cli):
    run, _ = cli
    log = tmp_path / "x.log"
    log.write_bytes(text(0, 1))
    result = run(str(log), "--format", "nginx")
    assert result.exit_code != 0 and "needs log_format" in result.output
    assert "NAME=VALUE" in run(str(log), "--field", "novalue").output
