"""The inference engine: the request API (engine.py) over a scheduler (scheduler.py: queue,
admission, deadlines, cancellation, the worker thread) that runs the model's batched step
(model/runner.py); results.py collects what a request gets back. No HTTP here and no request
limits: the routes validate and encode, then make one call."""

from app.engine.engine import Engine
from app.engine.results import GenerationStream, TextScore

__all__ = ["Engine", "GenerationStream", "TextScore"]
