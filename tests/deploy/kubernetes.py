"""Helpers for the Kubernetes manifests' tests: the objects of deploy/kubernetes/*.yaml, their
validation against the vendored JSON schemas of one Kubernetes version, and quantities."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import jsonschema_rs
import yaml

from tests.deploy.support import ROOT

MANIFEST_DIR = ROOT / "deploy/kubernetes"
KUBERNETES_VERSION = "1.30"
# kubernetes-validate's schemas for v1.30.0, strict (see the folder's README for credit)
SCHEMA_DIR = Path(__file__).parent / "kubernetes-json-schema" / "v1.30.0-local-strict"
QUANTITY_SUFFIXES = {
    "": 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
}


def manifests() -> dict[tuple[str, str], dict]:
    """Every object of deploy/kubernetes/*.yaml, by (kind, metadata.name)."""
    objects = {}
    for path in sorted(MANIFEST_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            key = (document["kind"], document["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = document
    return objects


def schema_file(manifest: dict) -> Path:
    """The schema file of the manifest's kind and apiVersion: Deployment in apps/v1 is
    deployment-apps-v1.json, ConfigMap in v1 is configmap-v1.json."""
    group_version = manifest["apiVersion"].split("/")
    group = group_version[0].split(".")[0] if len(group_version) == 2 else None
    parts = [manifest["kind"].lower(), *([group] if group else []), group_version[-1]]
    return SCHEMA_DIR / f"{'-'.join(parts)}.json"


@cache
def _definitions() -> jsonschema_rs.Registry:
    """The shared definitions every kind's schema refers to, under their own $id."""
    definitions = json.loads((SCHEMA_DIR / "_definitions.json").read_text(encoding="utf-8"))
    return jsonschema_rs.Registry([(definitions["$id"], definitions)])


def schema_errors(manifest: dict) -> list[str]:
    """Where and why the manifest breaks its kind's schema ("spec.replicas: ..."); empty when
    it is valid. A kind with no vendored schema fails the calling test."""
    path = schema_file(manifest)
    assert path.is_file(), f"no schema vendored for {manifest['kind']} {manifest['apiVersion']}"
    schema = json.loads(path.read_text(encoding="utf-8"))
    validator = jsonschema_rs.validator_for(schema, registry=_definitions())
    return [
        f"{'.'.join(map(str, error.instance_path))}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]


def quantity_bytes(quantity: str) -> int:
    """A memory quantity in bytes ("512Mi" -> 536870912)."""
    number, suffix = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * QUANTITY_SUFFIXES[suffix]


def cpu_cores(quantity: str) -> float:
    """A CPU quantity in cores ("2" -> 2.0, "500m" -> 0.5)."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
