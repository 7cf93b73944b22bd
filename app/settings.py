"""The service's configuration: one pydantic-settings class, read from NEXTWORD_* environment
variables (for example NEXTWORD_MODEL_DIR, NEXTWORD_MAX_BATCH_SIZE, NEXTWORD_QUANTIZE)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.schemas import STOP_CHARS_CEILING, STOP_STRINGS_CEILING
from model.runner import PREFILL_CHUNK


class Settings(BaseSettings):
    """Everything the service can be told at start-up; /info reports the limits."""

    model_config = SettingsConfigDict(env_prefix="NEXTWORD_", frozen=True)

    # the model
    model_dir: Path = Field(default=Path("checkpoints/default"), description="checkpoint directory")
    device: str = Field(default="cpu", description="torch device: cpu, cuda or cuda:N")
    threads: int | None = Field(
        default=None, ge=1, description="torch CPU threads (None: torch's own)"
    )
    quantize: Literal["none", "int8"] = Field(
        default="none", description="int8: dynamic int8 recurrent and output layers (CPU only)"
    )
    # the process (used by `python -m app`; uvicorn's own flags win when run through it)
    host: str = Field(default="0.0.0.0", description="interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port")
    served_model_name: str = Field(
        default="nextword", min_length=1, description="the model's name under /v1 (its `model`)"
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="if set, model routes, /v1 and /info need `Authorization: Bearer <key>`",
    )
    api_key_file: Path | None = Field(
        default=None, description="a file of accepted API keys, one a line (with api_key or not)"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='origins allowed by CORS, as JSON (["https://x.org"]); empty: CORS off',
    )
    # the engine
    max_batch_size: int = Field(default=32, ge=1, description="most sequences in one batched step")
    max_waiting: int = Field(
        default=64, ge=0, description="most requests waiting for a batch slot; more get 429"
    )
    prefill_chunk: int = Field(
        default=PREFILL_CHUNK, ge=1, description="most prompt tokens one sequence reads per step"
    )
    retry_after_seconds: int = Field(default=1, ge=1, description="Retry-After sent with a 429")
    # request limits
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="largest request body")
    max_text_chars: int = Field(default=20_000, ge=1, description="most characters in one text")
    max_text_tokens: int = Field(default=4_000, ge=1, description="most tokens in one text")
    max_texts: int = Field(default=64, ge=1, description="most texts in one /perplexity request")
    max_new_tokens: int = Field(
        default=1024, ge=1, description="cap on max_new_tokens of /generate"
    )
    max_stop_strings: int = Field(
        default=8, ge=0, le=STOP_STRINGS_CEILING, description="most stop strings in /generate"
    )
    max_stop_chars: int = Field(
        default=64, ge=1, le=STOP_CHARS_CEILING, description="most characters in a stop string"
    )
    request_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="deadline of a model request from its arrival: a generation then ends "
        'with finish_reason "time_limit"; a request with nothing to show gets 504',
    )
    shutdown_grace_seconds: int = Field(
        default=20,
        ge=0,
        description="on SIGTERM, how long requests in flight may still run (python -m app)",
    )

    def limits(self) -> dict[str, int | float]:
        """The request limits, as /info reports them."""
        names = (
            "max_body_bytes",
            "max_text_chars",
            "max_text_tokens",
            "max_texts",
            "max_new_tokens",
            "max_stop_strings",
            "max_stop_chars",
            "request_timeout_seconds",
            "max_batch_size",
            "max_waiting",
        )
        return {name: getattr(self, name) for name in names}
