"""The image's HEALTHCHECK: exit 0 when GET /health on this machine answers 200, else 1.

Python's standard library only, since the slim base image has no curl. The port is
$NEXTWORD_PORT (default 8000), as in deploy/serve.sh.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def healthy(url: str, timeout_seconds: float = 3.0) -> bool:
    """True when `url` answers 200 within the timeout; the failure goes to stderr."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            return response.status == 200
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
        return False


if __name__ == "__main__":
    port = os.environ.get("NEXTWORD_PORT", "8000")
    sys.exit(0 if healthy(f"http://127.0.0.1:{port}/health") else 1)
