"""Prometheus metrics and a health endpoint for `sitelog run`, on a loopback port.

Figures are read when scraped (buffer stats, the GeoIP state file), so nothing is counted twice
and nothing runs between scrapes; failed ship runs are counted by a scheduler listener.
``GET /metrics`` is the Prometheus text format; ``GET /healthz`` answers 200 with JSON while the
last ship succeeded or the buffer is empty, 503 otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sitelog.config import Config
from sitelog.redaction import redact

from .reports.settings import MetricsConfig, metrics_settings

log = logging.getLogger("sitelog.shipper")
DROP_COUNTERS = ("dropped_oldest", "dropped_newest", "dropped_block_timeout",
                 "dropped_wait_timeout", "dropped_disk_full", "batched_dropped",
                 "dropped_by_enrichment")


class ShipRuns:
    """Scheduled ship runs and those that ended with MongoDB unavailable (from buffer meta)."""

    def __init__(self, shipper: Any) -> None:
        self.shipper = shipper
        self.runs = 0
        self.errors = 0
        self._lock = threading.Lock()

    def __call__(self, event: JobExecutionEvent) -> None:
        if event.job_id != "ship":
            return
        failed = event.exception is not None or \
            self.shipper.buffer.stats().meta.get("last_ship_result") == "error"
        with self._lock:
            self.runs += 1
            self.errors += failed


def geoip_build_epoch(config: Config) -> float | None:
    """Build time of the installed GeoIP database, or None when there is none."""
    from sitelog.geodb import GeoDBError, GeoSettings, info

    try:
        current = info(GeoSettings.from_config(config)).get("current") or {}
    except (GeoDBError, OSError):
        return None
    return current.get("build_epoch")


def geoip_refresh_counters(config: Config) -> dict[str, int]:
    """Refresh outcomes so far (installed, unchanged, failed, rolled_back) from geodb's state."""
    from sitelog.geodb import GeoDBError, GeoSettings, counters

    try:
        return counters(GeoSettings.from_config(config).path)
    except (GeoDBError, OSError):
        return {}


class SitelogCollector(Collector):
    """Reads the buffer, the GeoIP state and the rollup job's last outcome at each scrape."""

    def __init__(self, config: Config, shipper: Any, runs: ShipRuns,
                 rollup: Any = None) -> None:
        self.config = config
        self.shipper = shipper
        self.runs = runs
        self.rollup = rollup

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        stats = self.shipper.buffer.stats()
        gauges = {
            "sitelog_buffer_rows": ("Records waiting in the buffer.", stats.rows),
            "sitelog_buffer_bytes": ("Bytes the buffer takes on disk: pages in use plus the WAL.",
                                     stats.bytes),
            "sitelog_buffer_wal_bytes": ("Size of the buffer's write-ahead log.", stats.wal_bytes),
            "sitelog_buffer_oldest_record_age_seconds": (
                "Age of the oldest buffered record (0 when empty).",
                0.0 if stats.oldest_ts is None else max(0.0, now - stats.oldest_ts)),
            "sitelog_dead_letters": ("Records MongoDB refused, kept for retry.",
                                     stats.dead_letters),
        }
        for name, (text, value) in gauges.items():
            yield GaugeMetricFamily(name, text, value=value)
        counters = stats.counters
        yield CounterMetricFamily("sitelog_shipped_records", "Records stored in MongoDB.",
                                  value=counters.get("shipped", 0))
        yield CounterMetricFamily("sitelog_dead_lettered_records",
                                  "Records moved to the dead-letter table.",
                                  value=counters.get("dead_lettered", 0))
        drops = CounterMetricFamily("sitelog_dropped_records", "Records dropped, by reason.",
                                    labels=["reason"])
        for name in DROP_COUNTERS:
            drops.add_metric([name.removeprefix("dropped_")], counters.get(name, 0))
        yield drops
        for name, text in (("salvages", "Damaged buffer files salvaged."),
                           ("salvaged_records", "Records copied out of damaged buffer files."),
                           ("salvage_unreadable_records",
                            "Records lost to damage (seqs missing from a salvaged file)."),
                           ("salvage_wal_frames_hidden",
                            "Committed WAL frames a damaged frame had hidden from SQLite.")):
            yield CounterMetricFamily(f"sitelog_{name}", text, value=counters.get(name, 0))
        every = CounterMetricFamily("sitelog_buffer_counter", "Every counter the buffer keeps.",
                                    labels=["name"])
        for name, value in sorted(counters.items()):
            every.add_metric([redact(name)], value)  # label values are output like any other
        yield every
        yield CounterMetricFamily("sitelog_ship_runs", "Scheduled ship runs.",
                                  value=self.runs.runs)
        yield CounterMetricFamily("sitelog_ship_errors",
                                  "Scheduled ship runs that gave up with MongoDB unavailable.",
                                  value=self.runs.errors)
        yield from self._last_ship(stats.meta)
        built = geoip_build_epoch(self.config)
        if built is not None:
            yield GaugeMetricFamily("sitelog_geoip_database_age_seconds",
                                    "Age of the installed GeoIP database (since its build).",
                                    value=now - built)
        refreshes = CounterMetricFamily("sitelog_geoip_refreshes",
                                        "GeoIP refresh outcomes (failed: rejected or unreachable).",
                                        labels=["outcome"])
        for outcome, count in sorted(geoip_refresh_counters(self.config).items()):
            refreshes.add_metric([outcome], count)
        yield refreshes
        if self.rollup is not None:
            yield from rollup_metrics(self.rollup)

    @staticmethod
    def _last_ship(meta: dict[str, str]) -> Iterator[Metric]:
        if "last_ship_at" in meta:
            yield GaugeMetricFamily("sitelog_last_ship_timestamp_seconds",
                                    "When the last ship run ended.",
                                    value=float(meta["last_ship_at"]))
            yield GaugeMetricFamily("sitelog_last_ship_success",
                                    "1 if the last ship run succeeded, else 0.",
                                    value=float(meta.get("last_ship_result") == "ok"))


def rollup_metrics(rollup: Any) -> Iterator[Metric]:
    """The rollup job as this process last saw it (no MongoDB query per scrape)."""
    fresh = rollup.freshness
    yield GaugeMetricFamily("sitelog_rollup_lease_held",
                            "1 if this process holds the rollup job's lease.",
                            value=float(rollup.holding))
    if rollup.last_run_at is not None:
        yield GaugeMetricFamily("sitelog_rollup_last_run_timestamp_seconds",
                                "When this process last ran (or tried) the rollup job.",
                                value=rollup.last_run_at)
    if fresh.get("lag_seconds") is not None:
        yield GaugeMetricFamily("sitelog_rollup_lag_seconds",
                                "Capture-time lag of the newest folded document behind the "
                                "newest shipped one.", value=fresh["lag_seconds"])
    for key, text in (("pending_partials", "Shipped partials not folded yet."),
                      ("late_page_views", "Page views that arrived after the allowed "
                       "lateness and joined no visit (rollup rebuild counts them).")):
        if key in fresh:
            yield GaugeMetricFamily(f"sitelog_rollup_{key}", text, value=fresh[key])


def health(shipper: Any, rollup: Any = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): healthy while the last ship succeeded or nothing waits."""
    stats = shipper.buffer.stats()
    result = stats.meta.get("last_ship_result")
    healthy = result == "ok" or stats.rows == 0
    return (200 if healthy else 503), {
        "status": "ok" if healthy else "failing", "buffer_rows": stats.rows,
        "oldest_record_age_seconds": None if stats.oldest_ts is None
        else round(time.time() - stats.oldest_ts, 3),
        "last_ship_result": result,
        "last_ship_detail": redact(stats.meta.get("last_ship_detail") or "") or None,
        "last_ship_at": float(stats.meta["last_ship_at"]) if "last_ship_at" in stats.meta
        else None,
        "rollup": None if rollup is None else {
            "lease_held": rollup.holding, "last_error": rollup.last_error,
            **{k: v.isoformat() if hasattr(v, "isoformat") else v
               for k, v in rollup.freshness.items()}},
    }


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class MetricsServer:
    """The running endpoint; `port` is the bound port (useful with port 0)."""

    def __init__(self, httpd: WSGIServer, runs: ShipRuns) -> None:
        self.httpd = httpd
        self.runs = runs
        self.host, self.port = httpd.server_address[:2]
        self.thread = threading.Thread(target=httpd.serve_forever, name="sitelog-metrics",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_app(config: Config, shipper: Any, runs: ShipRuns, rollup: Any = None) -> Any:
    """The WSGI app: /metrics for Prometheus, /healthz for load balancers and monitors."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SitelogCollector(config, shipper, runs, rollup))
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            status, body = health(shipper, rollup)
            start_response(f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                           [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"sitelog: try /metrics or /healthz\n"]

    return app


def start_metrics_server(config: Config, shipper: Any, scheduler: Any = None,
                         settings: MetricsConfig | None = None,
                         rollup: Any = None) -> MetricsServer | None:
    """Serve /metrics and /healthz on `metrics.host:metrics.port` in a daemon thread.

    Returns None when `metrics.enabled` is false. With `scheduler`, ship runs are counted.
    `settings` overrides the config's [metrics] section.
    """
    settings = settings or metrics_settings(config)
    if not settings.enabled:
        return None
    runs = ShipRuns(shipper)
    if scheduler is not None:
        scheduler.add_listener(runs, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    httpd = make_server(settings.host, settings.port, make_app(config, shipper, runs, rollup),
                        server_class=_Server, handler_class=_QuietHandler)
    server = MetricsServer(httpd, runs)
    log.info("sitelog: metrics on http://%s:%d/metrics", server.host, server.port)
    return server
