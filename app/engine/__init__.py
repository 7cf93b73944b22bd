"""The inference engine: a scheduler (queue, admission, deadlines, cancellation, the worker
thread) over the model's batched step (model/runner.py). No HTTP here and no request limits:
the routes validate and encode, then make one call."""

from app.engine.results import GenerationStream, TextScore
from app.engine.scheduler import Engine

__all__ = ["Engine", "GenerationStream", "TextScore"]
