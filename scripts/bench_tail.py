"""Benchmark: a `combined` access log into the buffer, beside a plain `re` loop and GoAccess.

    .venv/bin/python scripts/bench_tail.py [--lines 1000000] [--repeat 3] [--cpu N] [--no-goaccess]

Generates the log in a temp dir and measures, pinned to one core and in the same run:
(a) the plain Python floor: compile a combined regex, match each line, build a dict;
(b) sitelog parsing only (read, decode, parse to the record JSON, no buffer);
(c) sitelog's whole import path (read, parse, append to the SQLite buffer in batches);
(d) GoAccess (Debian's `goaccess`, a C log analyzer) parsing the same file, if installed.
Rates are lines per CPU-second (user + system), so other load on the machine counts less; the
best of --repeat interleaved runs is kept (GoAccess runs once); wall-clock seconds are shown too.
Ratios are against (a).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sitelog.agent.tail import LineParser, compile_format, import_file
from sitelog.agent.tail.identity import Source
from sitelog.agent.tail.reader import LineReader
from sitelog.buffer import Buffer

PLAIN = re.compile(r'(?P<ip>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
                   r'(?P<status>\d{3}) (?P<bytes>\S+) "(?P<referrer>[^"]*)" "(?P<ua>[^"]*)"')
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
PATHS = ["/", "/tutorial-search/?search_foss=Python&search_language=English",
         "/watch/Python/Getting-started-with-IPython/English/", "/static/css/main.css",
         "/static/js/jquery.min.js", "/media/videos/12/345/Python-English.webm",
         "/api/progress/?video=345&t=120", "/login/?next=%2Fdashboard%2F", "/favicon.ico",
         "/software-training/resource-center/", "/caf%C3%A9/%E0%A4%B9%E0%A4%BF"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-A515F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.6045.163 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0", "-",
]
ESCAPED_AGENT = r"Mozilla/5.0 (X11; Linux) \xE0\xA4\xB9 Firefox/121.0"  # 1 % of lines
VISITORS = 50_000  # distinct client addresses in a day
REFERRERS = ["-", "-", "https://spoken-tutorial.org/", "https://www.google.com/"]


def generate(path: Path, lines: int, seed: int = 7) -> None:
    """A day of traffic in nginx's combined format from 50,000 addresses: 1 path in 11
    percent-encoded (Hindi), 1 % of user agents with nginx's \\xHH escapes, half the referrers
    and some user agents '-'."""
    rng = random.Random(seed)
    visitors = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
                f"{rng.randint(1, 254)}" for _ in range(VISITORS)]
    start = 1_700_000_000
    with path.open("w", encoding="utf-8") as log:
        for n in range(lines):
            moment = time.gmtime(start + n * 86_400 // lines)
            stamp = (f"{moment.tm_mday:02d}/{MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
                     f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} +0530")
            method = rng.choice(("GET", "GET", "GET", "POST"))
            log.write(f'{rng.choice(visitors)} - - [{stamp}] "{method} '
                      f'{rng.choice(PATHS)} HTTP/1.1" {rng.choice((200, 200, 200, 304, 404))} '
                      f'{rng.randint(0, 200_000)} "{rng.choice(REFERRERS)}" '
                      f'"{ESCAPED_AGENT if rng.random() < 0.01 else rng.choice(AGENTS)}"\n')


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(run: Callable[[], int]) -> tuple[int, float, float]:
    """(lines, CPU seconds, wall seconds) of one run."""
    cpu0, wall0 = cpu(), time.perf_counter()
    lines = run()
    return lines, cpu() - cpu0, time.perf_counter() - wall0


def plain_loop(path: Path) -> int:
    count = 0
    with path.open(encoding="utf-8") as log:
        for line in log:
            match = PLAIN.match(line)
            if match is not None:
                match.groupdict()
                count += 1
    return count


def sitelog_parse(path: Path) -> int:
    source = Source(path)
    reader = LineReader(source.pread, LineParser(compile_format("combined")))
    count = 0
    while (batch := reader.next(final=True)) is not None:
        count += len(batch.rows)
    source.close()
    return count


def sitelog_import(path: Path, workdir: Path) -> int:
    for old in workdir.glob("bench-buffer.db*"):  # a fresh buffer each run
        old.unlink()
    buffer = Buffer(workdir / "bench-buffer.db", max_rows=0, max_bytes=0)
    report = import_file(buffer, path, LineParser(compile_format("combined")))
    stored = buffer.stats().rows
    buffer.close()
    assert stored == report.records, (stored, report.records)
    return report.records


def goaccess(path: Path, workdir: Path) -> int:
    output = workdir / "goaccess.json"
    subprocess.run(["goaccess", str(path), "--log-format=COMBINED", "--no-global-config",
                    "-o", str(output)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return json.loads(output.read_text())["general"]["valid_requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a)-(c); the best counts")
    parser.add_argument("--no-goaccess", action="store_true", help="skip (d), the slow GoAccess")
    args = parser.parse_args()
    core = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # one core; GoAccess inherits it
    with tempfile.TemporaryDirectory(prefix="sitelog-bench-") as tmp:
        workdir = Path(tmp)
        log = workdir / "access.log"
        generate(log, args.lines)
        print(f"{args.lines} lines, {log.stat().st_size / 1e6:.0f} MB, pinned to core {core}, "
              f"Python {sys.version.split()[0]}")
        runs: list[tuple[str, Callable[[], int]]] = [
            ("(a) plain re loop", lambda: plain_loop(log)),
            ("(b) sitelog parse only", lambda: sitelog_parse(log)),
            ("(c) sitelog import into buffer", lambda: sitelog_import(log, workdir)),
        ]
        best: dict[str, tuple[int, float, float]] = {}
        for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
            for name, run in runs:
                result = measure(run)
                if name not in best or result[1] < best[name][1]:
                    best[name] = result
        if shutil.which("goaccess") and not args.no_goaccess:  # once: a minute per 10^6 lines
            best["(d) GoAccess"] = measure(lambda: goaccess(log, workdir))
        results = [(name, *result) for name, result in best.items()]
        floor = results[0][1] / results[0][2]
        print(f"{'':32} {'lines':>9} {'CPU s':>7} {'wall s':>7} {'lines/CPU-s':>12} "
              f"{'vs (a)':>7}")
        for name, lines, cpu_s, wall_s in results:
            rate = lines / cpu_s
            print(f"{name:32} {lines:>9} {cpu_s:>7.2f} {wall_s:>7.2f} {rate:>12,.0f} "
                  f"{rate / floor:>6.0%}")
        if not shutil.which("goaccess") and not args.no_goaccess:
            print("GoAccess not installed (Debian: apt-get install goaccess): skipped")


if __name__ == "__main__":
    main()
