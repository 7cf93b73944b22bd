"""What the routes share (app/deps.py): the engine of the model a request names (404 for
a name not served, 503 with the reason when it does not run) and waiting for work that stops
when the client goes away."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from app.deps import engine_for, get_engine, get_settings, unless_disconnected
from app.errors import ClientDisconnected, NotReady, UnknownModel
from app.main import create_app


def _request(receive=None, app=None) -> Request:
    """A real starlette Request of an HTTP scope whose messages come from receive."""
    return Request({"type": "http", "app": app}, receive)


async def _client_stays() -> dict:
    await asyncio.Event().wait()  # no message: the connection stays open
    raise AssertionError("unreachable")


async def _client_leaves() -> dict:
    return {"type": "http.disconnect"}


def test_unless_disconnected_gives_the_result_while_the_client_stays() -> None:
    async def work() -> str:
        await asyncio.sleep(0.01)
        return "answer"

    result = asyncio.run(unless_disconnected(_request(_client_stays), work()))
    assert result == "answer"


def test_unless_disconnected_cancels_the_work_when_the_client_leaves() -> None:
    cancelled = []

    async def endless() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def run() -> None:
        with pytest.raises(ClientDisconnected) as left:
            await unless_disconnected(_request(_client_leaves), endless())
        await asyncio.sleep(0)  # the cancelled work finishes cancelling
        assert left.value.status_code == 499

    asyncio.run(run())
    assert cancelled == [True]


def test_get_engine_without_an_engine_is_503_saying_why(make_settings, tmp_path) -> None:
    settings = make_settings(model_dir=tmp_path / "missing")
    app = create_app(settings)  # the lifespan has not run: no engine yet
    request = _request(app=app)
    assert get_settings(request) is settings
    with pytest.raises(NotReady) as refused:
        get_engine(request)
    assert refused.value.message == "the model is not ready: the model is loading"


def test_engine_for_an_unknown_model_is_404_naming_the_served_ones_loaded_or_not(
    make_settings, tmp_path
) -> None:
    settings = make_settings(models={"a": tmp_path / "a", "b": tmp_path / "b"})
    request = _request(app=create_app(settings))  # the lifespan has not run: nothing loaded
    with pytest.raises(UnknownModel) as unknown:
        engine_for(request, "c")
    assert (unknown.value.status_code, unknown.value.error_type) == (404, "model_not_found")
    assert unknown.value.message.startswith(
        "model: 'c' is not served here; this server serves 'a', 'b'"
    )
    assert unknown.value.param == "model"
    with pytest.raises(NotReady):
        engine_for(request, "b")  # served, not loaded yet
