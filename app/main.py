"""The application factory: `uvicorn app.main:create_app --factory`.

The models load in the lifespan, never at import, each into its own engine. If one cannot be
loaded the service still starts: /health answers, /ready says 503 with the reason (the log
names the file and the problem), and that model's requests answer 503 — an orchestrator sees
why instead of a crash loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app import metrics
from app.access import configure_access_log
from app.auth import API_KEY, load_api_keys
from app.engine import Engine
from app.handlers import install_error_handlers
from app.middleware import BodyLimitMiddleware, MetricsMiddleware, RequestIdMiddleware
from app.openapi import install_openapi
from app.routes import fill_blank, generate, health, perplexity, predict
from app.settings import Settings
from app.v1 import router as openai_router

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """A word-level recurrent language model: next-word prediction, generation with
temperature / top-k / top-p sampling (streamed as server-sent events on request) and
perplexity. Concurrent requests share one batched step of the model. A server may serve
several models (NEXTWORD_MODELS), each with its own engine: a request picks one with `model`
(GET /v1/models lists them). Every error answers `{"error": ..., "error_type": ...}`, except
under /v1 and the tokenizer routes: an OpenAI-compatible API (completions, models, tokenize)
whose errors take OpenAI's shape `{"error": {"message", "type", "param", "code"}}`. With
NEXTWORD_API_KEY set, the model routes, /v1 and /info need `Authorization: Bearer <key>`."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load every served model and start its engine (its own worker thread and batch); stop
    them when the server stops. A model that cannot be loaded leaves the others serving and
    the service not ready, the reason naming it."""
    settings: Settings = app.state.settings
    engines: dict[str, Engine] = app.state.engines
    failed = []
    for name, directory in settings.served_models().items():
        try:
            engine = await asyncio.to_thread(Engine.load, settings.for_model(name))
        except Exception:
            log.exception("the model %r could not be loaded from %s", name, directory)
            failed.append(name)
        else:
            engine.start()
            engines[name] = engine
            log.info("model %r loaded from %s; serving", name, directory)
    _record_model_info(engines)
    if failed:
        reasons = [f"the model {name!r} could not be loaded" for name in failed]
        app.state.not_ready_reason = "; ".join(reasons) + "; the server log says why"
    try:
        yield
    finally:
        app.state.not_ready_reason = "the server is shutting down"
        for engine in engines.values():
            engine.stop()
        metrics.mark_worker_stopped()


def _record_model_info(engines: dict[str, Engine]) -> None:
    """nextword_model_info describes the models this process serves, one series each: a model
    loaded before them in the same process (an app built again, as tests do) leaves no series
    behind."""
    metrics.MODEL_INFO.clear()
    for name, engine in engines.items():
        config = engine.checkpoint.model.config
        metrics.MODEL_INFO.labels(
            model=name,
            cell=config.cell,
            hidden_size=str(config.hidden_size),
            num_layers=str(config.num_layers),
            vocab_size=str(config.vocab_size),
            quantize=engine.settings.quantize,
            weights_sha256=engine.checkpoint.weights_sha256[:16],
        ).set(1)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application for settings (default: read from NEXTWORD_* variables)."""
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    configure_access_log()
    app = FastAPI(
        title="nextword",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_keys = load_api_keys(settings)
    app.state.engines = {}  # name -> running engine, in the order of settings.served_models()
    app.state.not_ready_reason = "the model is loading"
    install_error_handlers(app)
    install_openapi(app, settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware)  # counts every answer, 413s included
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer has an id and a log line
    for module in (predict, generate, perplexity, fill_blank):
        app.include_router(module.router, dependencies=[API_KEY])
    app.include_router(openai_router.router, dependencies=[API_KEY])
    app.include_router(health.router)  # /info asks for the key itself
    if STATIC_DIR.is_dir():  # the playground; mounted last so that API routes come first
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app
