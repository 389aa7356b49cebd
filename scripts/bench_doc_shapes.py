"""Benchmark: what a document's shape costs the server, for the rollup job's own documents.

    .venv/bin/python scripts/bench_doc_shapes.py [--mongo-uri URI] [--pieces 300] [--docs 10]

Ten documents like a partial of 1,000 requests (`--pieces` visit pieces, each an object with
its visitor, first/last time and path, page views and ten entry attributes), stored four ways:
plain objects, one array per attribute, and packed (their BSON, and zlib-compressed, as BSON
binary; see shipper/reports/packed.py). For each: ms per document to insert, to find one at a
time by `_id`, to find all with one `_id: {$in}`, and to delete one at a time and with one
`$in`. Ratios against the plain objects come from the same run.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reports import server

from sitelog.shipper.reports.packed import pack

ATTRS = {"countries": "IN", "regions": '["IN", "MH"]', "cities": '["IN", "MH", "Mumbai"]',
         "browsers": "Chrome", "os": "Android", "devices": "mobile", "hours": "13",
         "channels": "search", "referrers": "google.com", "campaigns": '["a", "b"]'}


def pieces(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return [{"v": f"{rng.getrandbits(64):016x}", "s": now, "entry": f"/tutorial/{i}", "e": now,
             "exit": f"/tutorial/{i}/watch", "pv": rng.randint(1, 9), "a": dict(ATTRS)}
            for i in range(n)]


def shapes(hits: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    cols = ["v", "s", "entry", "e", "exit", "pv"]
    return {
        "plain objects": {"hits": hits},
        "one array per field": {"hits": {**{c: [h[c] for h in hits] for c in cols},
                                         **{a: [h["a"][a] for h in hits] for a in ATTRS}}},
        "BSON binary": {"hits": bson.Binary(bson.encode({"hits": hits}))},
        "packed (zlib BSON)": {"body": pack({"hits": hits})},
    }


def timed(action: Any) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def measure(coll: Any, doc: dict[str, Any], n: int) -> dict[str, float]:
    """ms per document of each operation on `n` copies of `doc`."""
    ids = list(range(n))
    half = ids[: n // 2]
    rest = ids[n // 2:]
    out = {
        "insert": timed(lambda: [coll.insert_one({"_id": i, **doc}) for i in ids]) / n,
        "find one by one": timed(lambda: [coll.find_one({"_id": i}) for i in ids]) / n,
        "find $in": timed(lambda: list(coll.find({"_id": {"$in": ids}}))) / n,
        "delete one by one": timed(lambda: [coll.delete_one({"_id": i}) for i in half])
        / len(half),
        "delete $in": timed(lambda: coll.delete_many({"_id": {"$in": rest}})) / len(rest),
    }
    return {k: v * 1000 for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mongo-uri", default=None)
    parser.add_argument("--pieces", type=int, default=300)
    parser.add_argument("--docs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, server(args.mongo_uri, Path(tmp)) as (uri, label):
        client: MongoClient = MongoClient(uri)
        db = client[f"bench_shapes_{random.getrandbits(32):08x}"]
        try:
            print(f"server: {label}; {args.docs} documents of {args.pieces} visit pieces\n")
            rows = {}
            for name, doc in shapes(pieces(args.pieces, 1)).items():
                rows[name] = (len(bson.encode(doc)), measure(db[name.split()[0]], doc, args.docs))
            ops = list(next(iter(rows.values()))[1])
            print("| shape | bytes | " + " | ".join(f"{op} ms" for op in ops) + " |")
            print("| --- | --- |" + " --- |" * len(ops))
            base = rows["plain objects"][1]
            for name, (size, ms) in rows.items():
                print(f"| {name} | {size:,} | " + " | ".join(
                    f"{ms[op]:.1f} ({base[op] / ms[op]:.1f}x)" for op in ops) + " |")
        finally:
            client.drop_database(db.name)
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
