"""`python -m app`: serve with uvicorn on NEXTWORD_HOST:NEXTWORD_PORT (one worker; for several,
run uvicorn with --workers as deploy/serve.sh does).

On SIGTERM uvicorn stops accepting connections, lets requests in flight finish for up to
NEXTWORD_SHUTDOWN_GRACE_SECONDS, stops the engine, and then raises the signal again so that its
default action ends the process (exit status 143). The shutdown was orderly by then, so this
entry point ignores that second SIGTERM and exits 0, as orchestrators expect of a clean stop.
"""

from __future__ import annotations

import signal

import uvicorn

from app.settings import Settings


def main() -> None:
    """Run the service as the settings say; exit 0 after a graceful SIGTERM shutdown."""
    settings = Settings()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # restored by uvicorn once it has stopped
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


if __name__ == "__main__":
    main()
