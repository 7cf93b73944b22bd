"""docker-compose.yml: valid, trainer before api, each from its Dockerfile target, one model
volume, every mounted file present, monitoring behind a profile."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.support import ROOT


def test_compose_file_defines_trainer_api_prometheus_and_grafana(compose_config: dict) -> None:
    assert set(compose_config["services"]) == {"trainer", "api", "prometheus", "grafana"}


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


def test_prometheus_scrapes_the_api_service_on_its_container_port(compose_config: dict) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["api:8000"]}]
    assert compose_config["services"]["api"]["ports"][0]["target"] == 8000


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
        "prometheus": ["monitoring"],
        "grafana": ["monitoring"],
    }
