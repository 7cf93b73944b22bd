"""Request and response bodies of the OpenAI-compatible routes, with the names and shapes vLLM
serves (https://platform.openai.com/docs/api-reference/completions), and their limits.

Parameters this server cannot honour are refused with a 400 naming them, never ignored:
presence_penalty, frequency_penalty, logit_bias, suffix and best_of are accepted only with the
values that change nothing (0, {}, "", 1 or null). Unknown fields are refused too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from app.schemas import (
    SEED_LIMIT,
    STOP_STRINGS_CEILING,
    ModelName,
    StopString,
    StrictRequest,
    Text,
)
from model.sampling import SamplingOptions

MAX_LOGPROBS = 20  # as vLLM's default --max-logprobs
MAX_TOKENS = 16  # OpenAI's max_tokens unless a request says
MAX_CHOICES = 128  # n; NEXTWORD_MAX_TEXTS bounds prompts x n further

TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=0)]
Prompt = (
    Text
    | Annotated[list[Text], Field(min_length=1)]
    | TokenIds
    | Annotated[list[TokenIds], Field(min_length=1)]
)


# -- /v1/completions ----------------------------------------------------------------------------
class StreamOptions(StrictRequest):
    """What a stream carries besides the text."""

    include_usage: bool = Field(
        default=False, description="a last chunk with the usage (and no choices) before [DONE]"
    )


def _only(accepted: dict) -> WithJsonSchema:
    """The published schema of a parameter accepted only with a no-op value (or null)."""
    return WithJsonSchema({"anyOf": [accepted, {"type": "null"}], "description": "no-op only"})


def _refuse(name: str, reason: str) -> ValueError:
    return ValueError(f"{name} is not supported by this server: {reason}")


class CompletionRequest(StrictRequest):
    """A completion of one prompt or several (choices ordered prompt-major: index =
    prompt_index * n + j)."""

    model: ModelName = None
    prompt: Prompt = Field(
        description="a text, a list of texts, a list of token ids (see /tokenize) or a list of "
        'such lists; "<eos>" in a text is the end-of-text token'
    )
    max_tokens: int | None = Field(
        default=MAX_TOKENS,
        ge=0,
        description="most tokens to generate; 0 (with echo): score the prompt",
    )
    temperature: float | None = Field(
        default=1.0, ge=0, le=100, allow_inf_nan=False, description="0 = greedy"
    )
    top_p: float | None = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)
    top_k: int | None = Field(
        default=None, ge=-1, le=1_000_000, description="vLLM's extension; -1, 0 or null: off"
    )
    repetition_penalty: float | None = Field(
        default=None, gt=0, le=100, allow_inf_nan=False, description="vLLM's extension"
    )
    n: int = Field(default=1, ge=1, le=MAX_CHOICES, description="choices per prompt")
    stop: (
        StopString | Annotated[list[StopString], Field(max_length=STOP_STRINGS_CEILING)] | None
    ) = Field(default=None, description="end a choice before the first of these (not in its text)")
    seed: int | None = Field(
        default=None, ge=0, le=SEED_LIMIT, description="choice j of a prompt samples with seed + j"
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool = Field(default=False, description="start each choice's text with its prompt")
    logprobs: int | None = Field(
        default=None, ge=0, le=MAX_LOGPROBS, description="the top N tokens at each position"
    )
    ignore_eos: bool = Field(default=False, description="vLLM's extension: never end at <eos>")
    user: str | None = Field(default=None, description="accepted and not used")
    # accepted only with the values that change nothing, so the schema says those
    presence_penalty: Annotated[float | None, _only({"const": 0})] = None
    frequency_penalty: Annotated[float | None, _only({"const": 0})] = None
    logit_bias: Annotated[
        dict[str, float] | None, _only({"type": "object", "maxProperties": 0})
    ] = None
    best_of: Annotated[int | None, _only({"const": 1})] = None
    suffix: Annotated[str | None, _only({"const": ""})] = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "nextword", "prompt": "我爱", "max_tokens": 20, "temperature": 0.8,
                 "seed": 1, "stop": ["。"]},
                {"prompt": [[1, 2, 3]], "max_tokens": 0, "echo": True, "logprobs": 1},
            ]
        }
    )  # fmt: skip

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None, info) -> float | None:  # type: ignore[no-untyped-def]
        if value:
            raise _refuse(info.field_name, "only 0 (use repetition_penalty instead)")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            raise _refuse("logit_bias", "only {} or null")
        return value

    @field_validator("best_of")
    @classmethod
    def _no_best_of(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise _refuse("best_of", "only 1 or null; ask for n choices instead")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise _refuse("suffix", "a left-to-right model cannot write towards a suffix")
        return value

    def prompt_list(self) -> list[str | list[int]]:
        """The request's prompts: one text, texts, one list of ids, or lists of ids."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if not prompt or isinstance(prompt[0], int):
            return [prompt]  # type: ignore[list-item]
        return list(prompt)  # type: ignore[arg-type]

    def to_sampling_options(self) -> SamplingOptions:
        """How every choice samples and stops (seed: the first choice's; choice j of a prompt
        uses seed + j): OpenAI's names, then SamplingOptions.of."""
        max_tokens = MAX_TOKENS if self.max_tokens is None else self.max_tokens
        renamed = {"max_new_tokens": max_tokens, "top_logprobs": self.logprobs}
        return SamplingOptions.of(self.model_dump() | renamed)


class CompletionLogprobs(BaseModel):
    """Per token of a choice: the token (a vocabulary entry), its log-probability, the most
    probable tokens at its place (the chosen one always among them) and where its text starts
    in the choice's text."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


OpenAIFinishReason = Literal["stop", "length"]


class CompletionChoice(BaseModel):
    """One completion; in a stream chunk, text is the new text and finish_reason is null until
    the choice's last chunk."""

    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: OpenAIFinishReason | None = None


class CompletionUsage(BaseModel):
    """Token counts: every prompt once, every generated token (a closing <eos> included)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    """The answer, or with stream: true one server-sent event of it (a chunk), then
    `data: [DONE]`."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None


# -- /v1/models ---------------------------------------------------------------------------------
class ModelCard(BaseModel):
    """A served model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "nextword"
    max_model_len: int = Field(description="most tokens in a prompt (NEXTWORD_MAX_TEXT_TOKENS)")


class ModelList(BaseModel):
    """The served models, the default (a request without `model` gets it) first."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- tokenizer routes (vLLM's, probed by lm-evaluation-harness) --------------------------------
class TokenizeRequest(StrictRequest):
    """A text to tokenize."""

    model: ModelName = None
    prompt: Text
    add_special_tokens: bool = Field(
        default=True,
        description="accepted, with no effect: every text is read after an implicit <eos> "
        "that is not one of its tokens",
    )
    return_token_strs: bool = Field(default=False, description="also return the tokens")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"prompt": "我爱北京<eos>", "add_special_tokens": False}]}
    )


class TokenizeResponse(BaseModel):
    """The text's token ids; "<eos>" and "<unk>" in it are one id each."""

    tokens: list[int]
    count: int
    max_model_len: int
    token_strs: list[str] | None = None


class DetokenizeRequest(StrictRequest):
    """Token ids to turn back into text."""

    model: ModelName = None
    tokens: list[Annotated[int, Field(ge=0)]]


class DetokenizeResponse(BaseModel):
    """The text of the tokens."""

    prompt: str


class TokenizerInfoResponse(BaseModel):
    """What a remote-tokenizer client needs: the special tokens and the limits."""

    eos_token: str
    unk_token: str
    bos_token: str | None = Field(description="none: texts start after an implicit eos_token")
    pad_token: str | None = None
    chat_template: str | None = None
    model_max_length: int
    vocab_size: int
    tokenizer_class: str
