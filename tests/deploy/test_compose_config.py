"""docker-compose.yml: valid, trainer before api, each from its Dockerfile target, one model
volume, every mounted file present, the API published only through the balancer (so replicas
can scale), read-only replicas given time to drain, Prometheus finding every replica,
monitoring behind a profile."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.settings import Settings
from model.train.corpora import CACHE_DIR_VARIABLE
from tests.deploy.support import ROOT

API_PORT, STATS_PORT = 8000, 8404  # HAProxy's, inside the lb container


def test_compose_file_defines_trainer_api_lb_prometheus_and_grafana(compose_config: dict) -> None:
    assert set(compose_config["services"]) == {"trainer", "api", "lb", "prometheus", "grafana"}


def test_api_starts_only_after_the_trainer_completed_successfully(compose_config: dict) -> None:
    depends_on = compose_config["services"]["api"]["depends_on"]
    assert depends_on == {"trainer": {"condition": "service_completed_successfully"}}


def test_trainer_writes_the_model_directory_the_api_reads_read_only(compose_config: dict) -> None:
    trainer, api = compose_config["services"]["trainer"], compose_config["services"]["api"]
    model_dir = trainer["environment"]["NEXTWORD_MODEL_DIR"]
    assert api["environment"]["NEXTWORD_MODEL_DIR"] == model_dir == "/models/default"
    assert "models:/models:rw" in trainer["volumes"]
    assert "models:/models:ro" in api["volumes"]


def test_trainer_runs_the_entry_point_the_makefile_runs(compose_config: dict) -> None:
    command = compose_config["services"]["trainer"]["command"]
    assert command == ["python", "-m", "deploy.train_if_missing"]
    assert "python -m deploy.train_if_missing" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_every_bind_mounted_path_exists(compose_config: dict) -> None:
    sources = [
        volume.split(":")[0]
        for service in compose_config["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("/")
    ]
    assert sources, "prometheus and grafana mount their configuration from deploy/"
    assert [s for s in sources if not Path(s).exists()] == []


def test_prometheus_finds_every_api_replica_through_dns_on_its_port() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["nextword"]["metrics_path"] == "/metrics"
    assert jobs["nextword"]["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": Settings().port, "refresh_interval": "5s"}
    ]
    assert jobs["haproxy"]["static_configs"] == [{"targets": [f"lb:{STATS_PORT}"]}]


def test_only_the_balancer_publishes_a_host_port(compose_config: dict) -> None:
    services = compose_config["services"]
    assert "ports" not in services["api"], "--scale api=N replicas would compete for it"
    ports = services["lb"]["ports"]
    assert ports[0] == {"published": 8000, "target": API_PORT}
    assert ports[1] == f"127.0.0.1:{STATS_PORT}:{STATS_PORT}/tcp", "stats on loopback only"


def test_the_balancer_listens_where_compose_publishes_and_asks_the_api_port(
    compose_config: dict,
) -> None:
    (mount,) = compose_config["services"]["lb"]["volumes"]
    source, target, mode = mount.split(":")
    assert (source, target, mode) == (
        str(ROOT / "deploy/haproxy/haproxy.cfg"),
        "/usr/local/etc/haproxy/haproxy.cfg",  # where the official haproxy image reads it
        "ro",
    )
    config = (ROOT / "deploy/haproxy/haproxy.cfg").read_text(encoding="utf-8")
    assert f"\n    bind :{API_PORT}\n" in config and f"\n    bind :{STATS_PORT}\n" in config
    assert f" api:{Settings().port}\n" in config  # server-template: the service name's replicas
    assert "uri /ready\n" in config


def test_the_trainer_runs_read_only_with_its_caches_in_tmp(compose_config: dict) -> None:
    trainer = compose_config["services"]["trainer"]
    assert trainer["read_only"] is True and trainer["tmpfs"] == ["/tmp"]
    environment = trainer["environment"]
    assert environment[CACHE_DIR_VARIABLE].startswith("/tmp/")
    assert environment["MPLCONFIGDIR"].startswith("/tmp/")


def test_replicas_run_read_only_and_are_given_time_to_drain(compose_config: dict) -> None:
    api = compose_config["services"]["api"]
    assert api["read_only"] is True and api["tmpfs"] == ["/tmp"]
    grace = int(api["stop_grace_period"].removesuffix("s"))
    assert grace > Settings().shutdown_grace_seconds


def test_trainer_and_api_build_their_targets_of_the_one_dockerfile(compose_config: dict) -> None:
    services = compose_config["services"]
    assert services["trainer"]["build"]["target"] == "train"
    assert services["api"]["build"]["target"] == "runtime"
    assert services["trainer"]["image"] != services["api"]["image"]


def test_build_arguments_default_to_the_dockerfiles_own(compose_config: dict) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for service in ("trainer", "api"):
        for name, value in compose_config["services"][service]["build"]["args"].items():
            assert f"\nARG {name}={value}\n" in dockerfile, (service, name, value)


def test_prometheus_and_grafana_start_only_with_the_monitoring_profile(
    compose_config: dict,
) -> None:
    profiles = {name: s.get("profiles", []) for name, s in compose_config["services"].items()}
    assert profiles == {
        "trainer": [],
        "api": [],
        "lb": [],
        "prometheus": ["monitoring"],
        "grafana": ["monitoring"],
    }
