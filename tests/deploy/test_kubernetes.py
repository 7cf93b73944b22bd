"""deploy/kubernetes/*.yaml: valid against the JSON schemas of Kubernetes 1.30 (vendored, strict:
an unknown field fails), and consistent with what the service really does: probe paths are
its routes, ports its port, NEXTWORD_* names its settings (with values it accepts), the drain
fits in the grace period, the user is the image's, the checkpoint the Job writes is the one the
pods read. No cluster is needed (none is reachable from the machines that run these tests)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model.train.corpora import CACHE_DIR_VARIABLE
from tests.deploy.kubernetes import (
    KUBERNETES_VERSION,
    cpu_cores,
    manifests,
    quantity_bytes,
    schema_errors,
)
from tests.deploy.support import ROOT, dockerfile_stages

OBJECTS = manifests()
DEPLOYMENT = OBJECTS["Deployment", "nextword"]
POD = DEPLOYMENT["spec"]["template"]
(API,) = POD["spec"]["containers"]
JOB = OBJECTS["Job", "nextword-train"]
(TRAINER,) = JOB["spec"]["template"]["spec"]["containers"]
CONFIG = OBJECTS["ConfigMap", "nextword"]["data"]
# Peak resident memory of one worker serving the default model (VmHWM over 1,200 requests from
# 32 clients; docs/deployment.md, Kubernetes): what the memory request must cover.
MEASURED_WORKER_PEAK_MIB = 453
PRE_STOP_SECONDS = 5


def setting_variables() -> set[str]:
    """Every NEXTWORD_* name the service reads: its Settings fields and deploy/serve.sh's own."""
    fields = {f"NEXTWORD_{name.upper()}" for name in Settings.model_fields}
    script = (ROOT / "deploy/serve.sh").read_text(encoding="utf-8")
    return fields | set(re.findall(r"\$\{?(NEXTWORD_[A-Z_]+)", script))


def answers_get(path: str) -> bool:
    """Whether the app, built as the server builds it, has a GET route at path: anything but
    404 or 405 (503 included: the model is not loaded here, as in a pod that is starting)."""
    client = TestClient(create_app(Settings()), raise_server_exceptions=False)
    return client.get(path).status_code not in (404, 405)


def container_port(name: str) -> int:
    """The API container's port of that name."""
    (port,) = [p["containerPort"] for p in API["ports"] if p["name"] == name]
    return port


def image_user_id() -> int:
    """The uid the Dockerfile gives the image's user."""
    (run,) = [args for stage in dockerfile_stages(ROOT / "Dockerfile") for name, args in stage
              if name == "RUN" and "useradd" in args]  # fmt: skip
    return int(re.search(r"--uid (\d+)", run).group(1))  # type: ignore[union-attr]


def served_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The service's Settings as a pod reads them from the ConfigMap."""
    for name, value in CONFIG.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.mark.parametrize("key", sorted(OBJECTS), ids="{0[0]}/{0[1]}".format)
def test_manifest_is_valid_against_the_kubernetes_schemas(key: tuple[str, str]) -> None:
    assert schema_errors(OBJECTS[key]) == [], f"invalid in Kubernetes {KUBERNETES_VERSION}"


def test_the_schemas_refuse_a_misspelt_field_a_wrong_type_and_a_missing_one() -> None:
    broken = copy.deepcopy(DEPLOYMENT)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["paht"] = "/ready"
    broken["spec"]["replicas"] = "2"
    del broken["spec"]["selector"]
    errors = "\n".join(schema_errors(broken))
    assert "'paht' was unexpected" in errors
    assert "spec.replicas:" in errors
    assert "selector" in errors


def test_the_manifests_hold_every_object_the_deployment_needs() -> None:
    kinds = sorted(kind for kind, _ in OBJECTS)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
        ]
    )


def test_probes_ask_the_apps_own_routes_on_its_port() -> None:
    probes = {kind: API[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe")}
    probes["livenessProbe"] = API["livenessProbe"]["httpGet"]
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/health",  # answers once the model load has ended
        "readinessProbe": "/ready",
        "livenessProbe": "/health",
    }
    assert all(answers_get(probe["path"]) for probe in probes.values())
    assert {container_port(probe["port"]) for probe in probes.values()} == {Settings().port}


def test_the_container_port_is_the_one_the_image_serves_on() -> None:
    environment = " ".join(
        args for stage in dockerfile_stages(ROOT / "Dockerfile") for name, args in stage
        if name == "ENV"
    )  # fmt: skip
    assert f"NEXTWORD_PORT={container_port('http')}" in environment
    assert "NEXTWORD_PORT" not in CONFIG  # the image's port holds


def test_prometheus_annotations_name_the_metrics_route_and_port() -> None:
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == container_port("http")
    assert answers_get(annotations["prometheus.io/path"])


def test_every_nextword_variable_is_a_setting_the_service_reads() -> None:
    api_names = set(CONFIG) | {e["name"] for e in API["env"]}
    nextword = {name for name in api_names if name.startswith("NEXTWORD_")}
    assert nextword and sorted(nextword - setting_variables()) == []
    trainer_names = {e["name"] for e in TRAINER["env"] if e["name"].startswith("NEXTWORD_")}
    assert sorted(trainer_names - setting_variables() - {CACHE_DIR_VARIABLE}) == []


def test_the_service_accepts_the_configmaps_values(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = served_settings(monkeypatch)
    assert str(settings.model_dir) == CONFIG["NEXTWORD_MODEL_DIR"]
    assert settings.threads == cpu_cores(API["resources"]["limits"]["cpu"])


def test_the_api_key_comes_from_a_secret() -> None:
    (key,) = [e for e in API["env"] if e["name"] == "NEXTWORD_API_KEY"]
    assert set(key["valueFrom"]) == {"secretKeyRef"}
    assert "api_key" in Settings.model_fields
    assert not any("API_KEY" in name for name in CONFIG), "never in the ConfigMap"


def test_a_pod_drains_within_its_termination_grace_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert API["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRE_STOP_SECONDS)]
    drain = PRE_STOP_SECONDS + served_settings(monkeypatch).shutdown_grace_seconds
    assert POD["spec"]["terminationGracePeriodSeconds"] > drain


def test_the_api_runs_as_the_images_user_on_a_read_only_root_filesystem() -> None:
    pod_security = POD["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == image_user_id()
    security = API["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in API["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "the one writable place"


def test_the_job_trains_with_the_compose_trainers_command_and_images() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert TRAINER["command"] == services["trainer"]["command"]
    assert TRAINER["image"] == services["trainer"]["image"]
    assert API["image"] == services["api"]["image"]
    assert JOB["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == image_user_id()
    assert TRAINER["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_job_writes_the_checkpoint_the_pods_read_read_only() -> None:
    claim = OBJECTS["PersistentVolumeClaim", "nextword-models"]["metadata"]["name"]
    job_pod = JOB["spec"]["template"]["spec"]
    writes = {v["name"]: v for v in job_pod["volumes"] if "persistentVolumeClaim" in v}
    reads = {v["name"]: v for v in POD["spec"]["volumes"] if "persistentVolumeClaim" in v}
    ((written_name, written),) = writes.items()
    ((read_name, read),) = reads.items()
    assert written["persistentVolumeClaim"] == {"claimName": claim}
    assert read["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    (write_mount,) = [m for m in TRAINER["volumeMounts"] if m["name"] == written_name]
    (read_mount,) = [m for m in API["volumeMounts"] if m["name"] == read_name]
    assert not write_mount.get("readOnly") and read_mount["readOnly"] is True
    assert write_mount["mountPath"] == read_mount["mountPath"]
    (model_dir,) = [e for e in TRAINER["env"] if e["name"] == "NEXTWORD_MODEL_DIR"]
    assert model_dir["valueFrom"]["configMapKeyRef"] == {
        "name": "nextword",
        "key": "NEXTWORD_MODEL_DIR",
    }
    assert CONFIG["NEXTWORD_MODEL_DIR"].startswith(read_mount["mountPath"] + "/")


def test_service_autoscaler_and_budget_select_the_deployments_pods() -> None:
    pod_labels = POD["metadata"]["labels"]
    service = OBJECTS["Service", "nextword"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert {container_port(p["targetPort"]) for p in service["ports"]} == {Settings().port}
    budget = OBJECTS["PodDisruptionBudget", "nextword"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    scaler = OBJECTS["HorizontalPodAutoscaler", "nextword"]["spec"]
    target = scaler["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        DEPLOYMENT["apiVersion"],
        "Deployment",
        DEPLOYMENT["metadata"]["name"],
    )
    assert scaler["minReplicas"] == DEPLOYMENT["spec"]["replicas"] <= scaler["maxReplicas"]
    assert budget["minAvailable"] < scaler["minReplicas"], "a node drain can evict one pod"


def test_resources_cover_the_measured_memory_of_one_worker() -> None:
    assert CONFIG["NEXTWORD_WORKERS"] == "1", "the figure is one worker's"
    requests, limits = API["resources"]["requests"], API["resources"]["limits"]
    assert quantity_bytes(requests["memory"]) >= MEASURED_WORKER_PEAK_MIB * 2**20
    assert quantity_bytes(limits["memory"]) > quantity_bytes(requests["memory"])
    assert cpu_cores(limits["cpu"]) >= cpu_cores(requests["cpu"])
