"""The service's configuration: one pydantic-settings class, read from NEXTWORD_* environment
variables (for example NEXTWORD_MODEL_DIR, NEXTWORD_MODELS, NEXTWORD_MAX_BATCH_SIZE)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.schemas import STOP_CHARS_CEILING, STOP_STRINGS_CEILING
from model.hardware import default_batch_size
from model.quantize import QUANTIZE_CHOICES, served_weights
from model.runner import PREFILL_CHUNK

_MODEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")  # a model's name in NEXTWORD_MODELS


class Settings(BaseSettings):
    """Everything the service can be told at start-up; /info reports the limits."""

    model_config = SettingsConfigDict(env_prefix="NEXTWORD_", frozen=True)

    # the model
    model_dir: Path = Field(default=Path("checkpoints/default"), description="checkpoint directory")
    models: dict[str, Path] = Field(
        default_factory=dict,
        description="several models, each a name and its checkpoint directory, as JSON "
        '({"forward": "checkpoints/default", "backward": "checkpoints/backward"}); the first '
        "is the default. Empty: one model, model_dir under served_model_name",
    )
    device: str = Field(default="cpu", description="torch device: cpu, cuda or cuda:N")
    threads: int | None = Field(
        default=None, ge=1, description="torch CPU threads (None: torch's own)"
    )
    quantize: Literal["auto", "none", "int8"] = Field(
        default="auto",
        description="int8: int8 weights, one scale per output channel (CPU only); none: float "
        "weights; auto: int8 on a CPU with an int8 dot product (VNNI or AMX), else none. /info "
        "reports the one served",
    )
    output: Literal["pruned", "full"] = Field(
        default="pruned",
        description="pruned: compute a tail cluster of the output layer only where a row's "
        "answer can need it (the same answers, exactly); full: the whole distribution of every "
        "row at every step (the baseline bench.bandwidth measures against)",
    )
    # the process (used by `python -m app`; uvicorn's own flags win when run through it)
    host: str = Field(default="0.0.0.0", description="interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port")
    served_model_name: str = Field(
        default="nextword",
        min_length=1,
        description="the model's name (a request's `model`) when models is empty",
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
    max_batch_size: int = Field(
        default=None,  # type: ignore[assignment]  # resolved from the device below
        ge=1,
        description="most sequences in one batched step (unset: 32 on the CPU, sized from the "
        "GPU's memory on CUDA)",
    )
    max_waiting: int = Field(
        default=None,  # type: ignore[assignment]  # resolved below
        ge=0,
        description="most requests waiting for a batch slot, more get 429 (unset: twice the batch)",
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

    @field_validator("models")
    @classmethod
    def _names_are_plain(cls, models: dict[str, Path]) -> dict[str, Path]:
        """A model's name is what requests write in `model` and what metrics label: keep it to
        plain characters."""
        for name in models:
            if not _MODEL_NAME.fullmatch(name):
                raise ValueError(
                    f"model name {name!r} in NEXTWORD_MODELS: use 1 to 64 letters, digits, "
                    "'.', '_' or '-'"
                )
        return models

    @model_validator(mode="before")
    @classmethod
    def _follow_the_device(cls, values: dict) -> dict:
        """Settings left unset that depend on the device get its values: the weights served
        (quantize auto), the batch limit and the queue. /info then reports what is in force."""
        values = dict(values)
        device = str(values.get("device") or "cpu")
        choice = values.get("quantize") or "auto"
        if choice in QUANTIZE_CHOICES:  # anything else: the field's own check names it
            try:
                values["quantize"] = served_weights(str(choice), device)
            except ValueError as error:
                raise ValueError(f"NEXTWORD_QUANTIZE={choice}: {error}") from error
        if values.get("max_batch_size") is None:
            values["max_batch_size"] = default_batch_size(device)
        if values.get("max_waiting") is None:
            values["max_waiting"] = 2 * int(values["max_batch_size"])
        return values

    def served_models(self) -> dict[str, Path]:
        """Each served model's name and checkpoint directory, the default (the model of a
        request without `model`) first: NEXTWORD_MODELS, or else the one model_dir under
        served_model_name."""
        return dict(self.models) or {self.served_model_name: self.model_dir}

    @property
    def default_model(self) -> str:
        """The name of the model a request without `model` gets."""
        return next(iter(self.served_models()))

    def for_model(self, name: str) -> Settings:
        """These settings for the one model served under name (one of served_models()): what
        its engine loads, and the name its metrics carry."""
        directory = self.served_models()[name]
        return self.model_copy(
            update={"models": {}, "model_dir": directory, "served_model_name": name}
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
