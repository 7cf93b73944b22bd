"""The provisioned Grafana dashboard: loads, has the panels the deployment promises, and reads
the provisioned data source from the directory compose mounts."""

from __future__ import annotations

import json

import yaml

from tests.deploy.support import ROOT, promql_metric_names

GRAFANA = ROOT / "deploy/grafana"
DASHBOARD = GRAFANA / "dashboards/nextword.json"


def test_promql_metric_names_skips_functions_labels_ranges_and_variables() -> None:
    expression = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{route="/x"}'
        "[$__rate_interval]))) / on (route) b_total offset 5m > bool 0.5"
    )
    assert promql_metric_names(expression) == {"a_seconds_bucket", "b_total"}


def test_dashboard_has_the_promised_panels_each_with_a_query() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert all(panel["targets"] for panel in panels)
    titles = [panel["title"] for panel in panels]
    assert titles[:5] == [
        "Request rate by route",
        "Request latency p50 / p95 / p99",
        "Tokens per second",
        "Batch size and queue size",
        "Error rate by type",
    ]


def test_every_query_reads_the_provisioned_prometheus_data_source() -> None:
    provisioning = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = provisioning["datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provider_reads_the_directory_compose_mounts(compose_config: dict) -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/nextword.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = compose_config["services"]["grafana"]["volumes"]
    assert f"{GRAFANA / 'dashboards'}:{path}:ro" in mounts
