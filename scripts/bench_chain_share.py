"""Benchmark: the enrichment chain's share of a whole ship (what compiling the chain could gain).

    .venv/bin/python scripts/bench_chain_share.py --mongo-uri URI [--records 20000]

Fills a buffer with request records (random addresses, a few pages and browsers), ships it with
the Spoken Tutorial example config (all five processors; GeoIP from .cache/geodb when installed)
and times the chain's calls inside the ship. A faster chain saves at most its share of the ship.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from sitelog.buffer import Buffer
from sitelog.config import load_config
from sitelog.shipper.ship import Shipper

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["/", "/watch/Python/Loops/Hindi/", "/tutorial-search/", "/news/events/"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-uri", required=True)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    os.environ.update(
        SITELOG_CONFIG=str(ROOT / "docs" / "examples" / "spoken-tutorial.toml"),
        SITELOG_MONGO_URI=args.mongo_uri, SITELOG_MONGO_DB=f"share_{uuid.uuid4().hex[:8]}",
        SITELOG_BUFFER_PATH=str(work / "buffer.db"),
        SITELOG_GEODB_DIR=os.environ.get("SITELOG_GEODB_DIR", str(ROOT / ".cache" / "geodb")))
    config = load_config()
    rng = random.Random(1)
    now = time.time()
    buffer = Buffer(config.buffer.path, max_rows=0, max_bytes=0)
    buffer.append_many(("requests", now - i / 100, {
        "method": "GET", "path": rng.choice(PATHS), "status": 200, "duration_ms": 1.2,
        "bytes": 500, "ip": ".".join(str(rng.randrange(1, 223)) for _ in range(4)),
        "ua": rng.choice(AGENTS), "referrer": "https://www.google.com/", "source": "wsgi",
    }) for i in range(args.records))
    buffer.close()

    shipper = Shipper.from_config(config)
    spent = 0.0
    run = shipper.chain.run

    def timed(kind: str, doc: dict) -> dict | None:  # type: ignore[type-arg]
        nonlocal spent
        start = time.perf_counter()
        try:
            return run(kind, doc)
        finally:
            spent += time.perf_counter() - start

    shipper.chain.run = timed  # type: ignore[method-assign]
    start = time.perf_counter()
    report = shipper.ship_pending()
    total = time.perf_counter() - start
    shipper.close()
    print(report.summary())
    print(f"ship {total:.2f}s "
          f"({args.records / total:,.0f} records/s), chain {spent:.2f}s = {spent / total:.1%} "
          "of the ship")


if __name__ == "__main__":
    main()
