"""The optional API key, as vLLM's --api-key: with NEXTWORD_API_KEY (one key) and/or
NEXTWORD_API_KEY_FILE (one key a line) set, the model routes, /v1 and /info answer 401 unless
the request carries `Authorization: Bearer <key>`. /health, /ready and /metrics stay open for
probes and scrapers; so do the playground's files and the API documentation.

Keys are compared in constant time, each of them every time, and never logged.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Unauthorized
from app.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="Only when the server has an API key (NEXTWORD_API_KEY): the key.",
)


def load_api_keys(settings: Settings) -> tuple[bytes, ...]:
    """The accepted keys (none: the API is open). A key file that cannot be read stops the
    start-up with the reason, rather than serving an open API by mistake."""
    keys = []
    if settings.api_key is not None:
        keys.append(settings.api_key.get_secret_value())
    if settings.api_key_file is not None:
        lines = settings.api_key_file.read_text(encoding="utf-8").splitlines()
        keys.extend(line.strip() for line in lines)
    keys = [key for key in keys if key]
    if (settings.api_key is not None or settings.api_key_file is not None) and not keys:
        raise ValueError("NEXTWORD_API_KEY / NEXTWORD_API_KEY_FILE is set but holds no key")
    return tuple(key.encode("utf-8") for key in keys)


def _accepted(given: bytes, keys: tuple[bytes, ...]) -> bool:
    """Whether given is one of keys; every key is compared, in constant time."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key)
    return matched


async def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Pass when no key is configured or the request's bearer token is one of the keys;
    else 401 (in the answering route's error shape)."""
    keys: tuple[bytes, ...] = request.app.state.api_keys
    if not keys:
        return
    given = credentials.credentials.encode("utf-8") if credentials is not None else b""
    if not _accepted(given, keys):
        raise Unauthorized(
            "missing or wrong API key: send the header `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )


API_KEY = Depends(require_api_key)
