"""The Dockerfile's promises that can be read without building it: CPU torch in its own early
layer, a runtime stage with a non-root user, model volume, port and health check, and a build
context that keeps every file the image copies."""

from __future__ import annotations

import fnmatch
import json
import os

from tests.deploy.support import ROOT, dockerfile_stages

BUILD, RUNTIME = dockerfile_stages(ROOT / "Dockerfile")


def arguments(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    """The arguments of every `instruction` in `stage`, in order."""
    return [args for name, args in stage if name == instruction]


def test_torch_is_installed_from_the_cpu_index_before_any_code_is_copied() -> None:
    runs = [i for i, (name, args) in enumerate(BUILD) if name == "RUN" and " torch" in args]
    assert runs and "download.pytorch.org/whl/cpu" in BUILD[runs[0]][1]
    copies = [args.split()[0] for args in arguments(BUILD, "COPY")]
    assert copies == ["constraints.txt", "pyproject.toml"], "code stays out of the build stage"
    assert BUILD.index(("COPY", "pyproject.toml ./")) > runs[0]


def test_runtime_stage_takes_the_environment_then_the_code() -> None:
    copies = arguments(RUNTIME, "COPY")
    assert copies[0] == "--from=build /opt/venv /opt/venv"
    assert [c.split()[0] for c in copies[1:]] == ["model", "app", "deploy"]


def test_runtime_stage_runs_as_non_root_with_model_volume_port_and_health_check() -> None:
    assert arguments(RUNTIME, "USER")[-1] not in ("root", "0")
    assert arguments(RUNTIME, "VOLUME") == ["/models"]
    assert arguments(RUNTIME, "EXPOSE") == ["8000"]
    (healthcheck,) = arguments(RUNTIME, "HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "deploy/healthcheck.py"]')
    environment = " ".join(arguments(RUNTIME, "ENV"))
    assert "NEXTWORD_MODEL_DIR=/models/default" in environment
    assert "NEXTWORD_WORKERS=1" in environment


def test_image_command_is_an_executable_script_in_the_repository() -> None:
    (command,) = arguments(RUNTIME, "CMD")
    (script,) = json.loads(command)
    assert os.access(ROOT / script, os.X_OK)


def test_docker_context_keeps_every_file_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        args.split()[0] for args in arguments(BUILD + RUNTIME, "COPY") if "--from" not in args
    ]
    for source in sources:
        assert (ROOT / source).exists()
        assert not any(fnmatch.fnmatch(source, p.removeprefix("**/")) for p in patterns), source
