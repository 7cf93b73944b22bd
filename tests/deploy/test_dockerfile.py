"""The Dockerfile's promises that can be read without building it: CPU torch in its own early
layer from an index given as a build argument, an API target with the runtime dependencies, a
non-root user, model volume, port and readiness health check, a train target on top of it, and
a build context that keeps every file the image copies. tests/deploy/test_image.py builds it."""

from __future__ import annotations

import fnmatch
import json
import os

from tests.deploy.support import ROOT, dockerfile_stages

STAGES = {stage[0][1].split()[-1]: stage for stage in dockerfile_stages(ROOT / "Dockerfile")}
BUILD, SERVING, TRAIN, RUNTIME = (STAGES[n] for n in ("build", "serving", "train", "runtime"))


def arguments(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    """The arguments of every `instruction` in `stage`, in order."""
    return [args for name, args in stage if name == instruction]


def test_the_api_is_the_default_target_and_the_trainer_builds_on_it() -> None:
    assert list(STAGES)[-1] == "runtime", "a plain `docker build` gives the API image"
    assert TRAIN[0] == ("FROM", "serving AS train")
    assert RUNTIME[0] == ("FROM", "serving AS runtime")


def test_no_syntax_directive_makes_buildkit_pull_a_frontend_image() -> None:
    first_line = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()[0]
    assert not first_line.replace(" ", "").lower().startswith("#syntax=")


def test_torch_comes_first_from_the_index_build_argument_default_cpu() -> None:
    runs = [i for i, (name, args) in enumerate(BUILD) if name == "RUN" and " torch" in args]
    assert runs, "torch has a RUN of its own"
    assert "${TORCH_INDEX_URL:+--index-url" in BUILD[runs[0]][1], "empty: pip's configuration"
    assert "-c constraints.txt" in BUILD[runs[0]][1], "the pinned version either way"
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in arguments(BUILD, "ARG")
    copies = [args.split()[0] for args in arguments(BUILD, "COPY")]
    assert copies == ["constraints.txt", "pyproject.toml"], "code stays out of the build stage"
    assert BUILD.index(("COPY", "pyproject.toml deploy/requirements.py ./")) > runs[0]


def test_the_base_image_is_a_build_argument() -> None:
    first = (ROOT / "Dockerfile").read_text(encoding="utf-8").split("\nFROM", 1)[0]
    assert "\nARG BASE_IMAGE=python:3.11-slim" in first
    assert BUILD[0] == ("FROM", "${BASE_IMAGE} AS build")
    assert SERVING[0] == ("FROM", "${BASE_IMAGE} AS serving")


def test_serving_takes_the_runtime_environment_then_the_code() -> None:
    copies = arguments(SERVING, "COPY")
    assert copies[0] == "--from=build /opt/venv /opt/venv"
    assert [c.split()[0] for c in copies[1:]] == ["model", "app", "deploy"]
    (install,) = [args for args in arguments(BUILD, "RUN") if "requirements.txt" in args]
    assert install.endswith("pip install -c constraints.txt -r requirements.txt")


def test_train_target_adds_the_train_extra_and_runs_the_trainer() -> None:
    (install,) = arguments(TRAIN, "RUN")
    assert "-r /tmp/train-requirements.txt" in install
    assert arguments(TRAIN, "USER")[-1] not in ("root", "0")
    assert json.loads(arguments(TRAIN, "CMD")[0]) == ["python", "-m", "deploy.train_if_missing"]


def test_runtime_stage_runs_as_non_root_with_model_volume_port_and_health_check() -> None:
    assert arguments(RUNTIME, "USER")[-1] not in ("root", "0")
    assert arguments(RUNTIME, "VOLUME") == ["/models"]
    assert arguments(RUNTIME, "EXPOSE") == ["8000"]
    (healthcheck,) = arguments(RUNTIME, "HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "deploy/healthcheck.py"]')
    assert "/ready" in (ROOT / "deploy/healthcheck.py").read_text(encoding="utf-8")
    environment = " ".join(arguments(SERVING, "ENV"))
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
    copies = arguments(BUILD + SERVING, "COPY")
    sources = [path for args in copies if "--from" not in args for path in args.split()[:-1]]
    for source in sources:
        assert (ROOT / source).exists()
        assert not any(fnmatch.fnmatch(source, p.removeprefix("**/")) for p in patterns), source
