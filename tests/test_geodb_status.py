"""A failed GeoIP refresh is reported in `sitelog status` and in the metrics, not only the log."""

from __future__ import annotations

import json

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from sitelog import geodb
from sitelog.cli import main
from sitelog.config import Config
from sitelog.shipper.metrics import SitelogCollector, geoip_refresh_counters


def test_failed_refresh_shows_in_status_and_metrics(tmp_path):
    config = Config.model_validate({"buffer": {"path": str(tmp_path / "b.db")},
                                    "geodb": {"dir": str(tmp_path / "geo")}})
    settings = geodb.GeoSettings.from_config(config)
    result = geodb.refresh(settings, source=f"file://{tmp_path}/missing.mmdb")
    assert not result.ok
    path = tmp_path / "config.toml"
    path.write_text(f'[buffer]\npath = "{tmp_path / "b.db"}"\n'
                    f'[geodb]\ndir = "{tmp_path / "geo"}"\n')
    status = CliRunner().invoke(main, ["--config", str(path), "status", "--json"])
    assert status.exit_code == 0, status.output
    last = json.loads(status.output)["geoip_last_refresh"]
    assert last is not None and "missing.mmdb" in json.dumps(last)
    assert geoip_refresh_counters(config).get("failed") == 1


def test_refresh_counter_is_exposed_to_prometheus(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    config = Config.model_validate({"buffer": {"path": str(tmp_path / "b.db")},
                                    "geodb": {"dir": str(tmp_path / "geo")}})
    geodb.refresh(geodb.GeoSettings.from_config(config), source=f"file://{tmp_path}/x.mmdb")
    from sitelog.buffer import Buffer
    from sitelog.shipper.metrics import ShipRuns

    class BufferOnlyShipper:  # only what the collector reads: the buffer
        buffer = Buffer(tmp_path / "b.db")

    registry = CollectorRegistry()
    registry.register(SitelogCollector(config, BufferOnlyShipper(), ShipRuns(BufferOnlyShipper())))
    text = generate_latest(registry).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {s.labels.get("outcome"): s.value for s in families["sitelog_geoip_refreshes"].samples
               if s.name.endswith("_total")}
    assert samples["failed"] == 1
