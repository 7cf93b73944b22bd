"""What the routes share: the settings, the engine of the model a request names, the error
responses every model route documents, and waiting for work that stops when the client goes
away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from app.engine import Engine
from app.errors import ClientDisconnected, NotReady, UnknownModel
from app.schemas import ErrorResponse
from app.settings import Settings

T = TypeVar("T")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in (
        (401, "an API key is configured (NEXTWORD_API_KEY) and the request did not bring it"),
        (404, "model names no model this server serves: the message lists those it serves"),
        (413, "a text or the request is over a configured limit"),
        (422, "a field breaks a rule: the message names the field and the rule"),
        (429, "overloaded: every batch slot busy and the queue full; see Retry-After"),
        (503, "the model is not loaded"),
        (504, "the deadline (see /info) passed before anything could be answered"),
    )
}


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def _running(request: Request, name: str) -> Engine:
    """The running engine of the served model name, or a 503 saying why there is none."""
    engine: Engine | None = request.app.state.engines.get(name)
    if engine is None or not engine.running:
        raise NotReady(f"the model is not ready: {request.app.state.not_ready_reason}")
    return engine


def engine_for(request: Request, name: str | None) -> Engine:
    """The running engine of the model a request names in `model` (None: the default model):
    a 404 naming the models served for a name that is none of them, a 503 saying why when the
    model does not run. The model chosen labels the request's metrics."""
    settings = get_settings(request)
    served = settings.served_models()
    chosen = settings.default_model if name is None else name
    if chosen in served:
        request.state.model = chosen  # read by MetricsMiddleware once the answer is sent
        return _running(request, chosen)
    raise UnknownModel(chosen, list(served))


def get_engine(request: Request) -> Engine:
    """The default model's running engine, for a route that takes no `model` (/info), or a
    503 saying why it does not run."""
    return _running(request, get_settings(request).default_model)


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body was already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """The result of work, or ClientDisconnected (work cancelled, which takes its sequences
    out of the batch) if the client leaves first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()  # finishes cancelling on its own: its `finally` frees the rows
    if not task.done() or task.cancelled():
        raise ClientDisconnected("the client closed the connection")
    return task.result()
