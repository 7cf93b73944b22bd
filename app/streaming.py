"""Server-sent events: the one way a streamed answer (/generate, /v1/completions) ends, with
`data: [DONE]` after its events, or with an error event when it fails mid-stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from app import metrics
from app.errors import ServiceError

log = logging.getLogger(__name__)


async def event_stream(
    events: AsyncIterator[str], error_data: Callable[[ServiceError], str], close: Callable[[], None]
) -> AsyncIterator[str]:
    """Each of events, then `data: [DONE]`. An error mid-stream (the status line is long sent)
    becomes one event whose data is error_data(error), in the route's error body; any other
    exception is logged and answered as an internal ServiceError. close runs however the stream
    ends (a client that leaves cancels this iterator), so its sequences leave the batch."""
    try:
        async for event in events:
            yield event
    except ServiceError as error:
        metrics.ERRORS.labels(error.error_type).inc()
        yield f"data: {error_data(error)}\n\n"
    except Exception:
        log.exception("generation failed mid-stream")
        failure = ServiceError("internal error while generating (see server log)")
        metrics.ERRORS.labels(failure.error_type).inc()
        yield f"data: {error_data(failure)}\n\n"
    finally:
        close()
    yield "data: [DONE]\n\n"
