"""The optional API key (app/auth.py): read from NEXTWORD_API_KEY and NEXTWORD_API_KEY_FILE;
with one set, the model routes, /v1 and /info need it, the probes and the documentation do not."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.auth import load_api_keys
from app.main import create_app
from tests.app.support import openai_error_of


def test_api_key_guards_model_routes_v1_and_info_only(make_settings, tmp_path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("second-key\n\nthird-key\n", encoding="utf-8")
    settings = make_settings(api_key="first-key", api_key_file=keys)
    with TestClient(create_app(settings)) as guarded:
        for path in ("/health", "/ready", "/metrics", "/", "/openapi.json"):
            assert guarded.get(path).status_code == 200, path
        ours = guarded.post("/generate", json={"max_new_tokens": 2})
        assert ours.status_code == 401 and ours.json()["error_type"] == "invalid_api_key"
        assert ours.headers["www-authenticate"] == "Bearer"
        assert guarded.get("/info").status_code == 401
        for path in ("/v1/models", "/tokenizer_info"):
            status, error = openai_error_of(guarded.get(path))
            assert (status, error["type"]) == (401, "authentication_error")
        wrong = {"Authorization": "Bearer first-kez"}
        assert guarded.post("/perplexity", json={"text": "我"}, headers=wrong).status_code == 401
        for key in ("first-key", "second-key", "third-key"):
            headers = {"Authorization": f"Bearer {key}"}
            assert guarded.post("/predict-next", json={"text": "我"}, headers=headers).is_success
            assert guarded.get("/v1/models", headers=headers).is_success


def test_api_key_is_off_by_default(client: TestClient) -> None:
    assert client.app.state.api_keys == ()
    assert client.get("/info").status_code == 200
    assert client.post("/generate", json={"max_new_tokens": 2}).status_code == 200


def test_keys_come_from_the_setting_and_the_file_blank_lines_skipped(make_settings, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("  second-key  \n\n\nthird-key", encoding="utf-8")
    loaded = load_api_keys(make_settings(api_key="first-key", api_key_file=keys))
    assert loaded == (b"first-key", b"second-key", b"third-key")
    assert load_api_keys(make_settings(api_key_file=keys)) == (b"second-key", b"third-key")


def test_a_key_setting_that_holds_no_key_stops_the_start(make_settings, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n  \n", encoding="utf-8")
    for settings in (make_settings(api_key_file=empty), make_settings(api_key="")):
        with pytest.raises(ValueError, match="holds no key"):
            create_app(settings)  # rather than serving an open API by mistake
    with pytest.raises(FileNotFoundError):
        load_api_keys(make_settings(api_key_file=tmp_path / "missing"))
