"""`python -m app`: serve with uvicorn on NEXTWORD_HOST:NEXTWORD_PORT (one worker; for several,
run uvicorn with --workers as deploy/serve.sh does)."""

from __future__ import annotations

import uvicorn

from app.settings import Settings


def main() -> None:
    """Run the service as the settings say."""
    settings = Settings()
    uvicorn.run("app.main:create_app", factory=True, host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
