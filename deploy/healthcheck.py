"""The image's HEALTHCHECK: exit 0 when GET /ready on this machine answers 200, else 1.

Readiness, not liveness: a container whose model failed to load (or is still loading) answers
/health but is not healthy, so compose's `depends_on: service_healthy` and orchestrators never
send it traffic (docs/deployment.md, Health). Python's standard library only, since the slim
base image has no curl. The port is $NEXTWORD_PORT (default 8000), as in deploy/serve.sh.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def answers_ok(url: str, timeout_seconds: float = 3.0) -> bool:
    """True when `url` answers 200 within the timeout; the failure goes to stderr."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            return response.status == 200
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
        return False


if __name__ == "__main__":
    port = os.environ.get("NEXTWORD_PORT", "8000")
    sys.exit(0 if answers_ok(f"http://127.0.0.1:{port}/ready") else 1)
