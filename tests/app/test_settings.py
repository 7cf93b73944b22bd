"""The service's configuration (app/settings.py): read from NEXTWORD_* variables, typed,
checked against its bounds, frozen, and reported by limits()."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings
from model.hardware import int8_matmul_missing


def test_settings_read_and_type_nextword_variables(monkeypatch, tmp_path) -> None:
    for name, value in {
        "MODEL_DIR": str(tmp_path), "MAX_BATCH_SIZE": "4", "QUANTIZE": "int8",
        "REQUEST_TIMEOUT_SECONDS": "2.5", "CORS_ORIGINS": '["https://a.org", "https://b.org"]',
        "API_KEY": "sk-secret",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"NEXTWORD_{name}", value)
    monkeypatch.setenv("MAX_TEXTS", "1")  # no prefix: not ours
    settings = Settings()
    assert settings.model_dir == tmp_path and isinstance(settings.model_dir, Path)
    assert (settings.max_batch_size, settings.quantize) == (4, "int8")
    assert settings.request_timeout_seconds == 2.5
    assert settings.cors_origins == ["https://a.org", "https://b.org"]
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(settings)
    assert settings.max_texts == 64  # the default


def test_unset_settings_follow_the_device() -> None:
    on_cpu = Settings()
    fast_int8 = int8_matmul_missing() is None  # int8 weights by default where int8 is faster
    assert (on_cpu.quantize, on_cpu.output) == ("int8" if fast_int8 else "none", "pruned")
    assert (on_cpu.max_batch_size, on_cpu.max_waiting) == (32, 64)
    assert Settings(max_batch_size=8).max_waiting == 16
    assert Settings(quantize="none").quantize == "none"
    assert Settings(device="cuda").quantize == "none"  # float on a GPU, with or without one


def test_int8_on_a_gpu_is_refused_with_the_way_out() -> None:
    with pytest.raises(ValidationError, match="CPU only") as refused:
        Settings(device="cuda", quantize="int8")
    assert "NEXTWORD_QUANTIZE" in str(refused.value)


def test_a_keyword_wins_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("NEXTWORD_MAX_TEXTS", "5")
    assert Settings().max_texts == 5
    assert Settings(max_texts=7).max_texts == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_BATCH_SIZE", "0"),
        ("QUANTIZE", "fp16"),
        ("PORT", "70000"),
        ("MAX_STOP_STRINGS", "65"),  # above what the schemas allow
        ("MAX_STOP_CHARS", "257"),
        ("MAX_BODY_BYTES", "100"),
        ("REQUEST_TIMEOUT_SECONDS", "0"),
        ("THREADS", "many"),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_the_setting(monkeypatch, name, value) -> None:
    monkeypatch.setenv(f"NEXTWORD_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_settings_are_frozen_and_limits_lists_the_request_limits() -> None:
    settings = Settings(max_texts=3, request_timeout_seconds=7.5)
    with pytest.raises(ValidationError):
        settings.max_texts = 4  # type: ignore[misc]
    limits = settings.limits()
    assert limits["max_texts"] == 3 and limits["request_timeout_seconds"] == 7.5
    assert set(limits) == {
        "max_body_bytes", "max_text_chars", "max_text_tokens", "max_texts", "max_new_tokens",
        "max_stop_strings", "max_stop_chars", "request_timeout_seconds", "max_batch_size",
        "max_waiting",
    }  # fmt: skip
    assert all(limits[name] == getattr(settings, name) for name in limits)


def test_one_model_by_default_several_from_nextword_models(monkeypatch, tmp_path) -> None:
    one = Settings(model_dir=tmp_path, served_model_name="mine")
    assert one.served_models() == {"mine": tmp_path} and one.default_model == "mine"
    monkeypatch.setenv("NEXTWORD_MODELS", '{"forward": "ckpt/f", "backward": "ckpt/b"}')
    several = Settings(model_dir=tmp_path)  # MODEL_DIR then serves nothing
    assert several.served_models() == {"forward": Path("ckpt/f"), "backward": Path("ckpt/b")}
    assert several.default_model == "forward"  # the first listed
    backward = several.for_model("backward")
    assert backward.served_models() == {"backward": Path("ckpt/b")}
    assert (backward.model_dir, backward.served_model_name) == (Path("ckpt/b"), "backward")
    assert backward.limits() == several.limits()


@pytest.mark.parametrize("name", ["", "my model", "a/b", "x" * 65, "modèle"])
def test_a_model_name_that_is_not_plain_is_refused_saying_what_is_allowed(name) -> None:
    with pytest.raises(ValidationError, match="NEXTWORD_MODELS: use 1 to 64 letters") as refused:
        Settings(models={name: "checkpoints/default"})
    assert repr(name) in str(refused.value)
