"""Request and response bodies, with their limits and OpenAPI examples.

Fixed limits live here (`Field(ge=..., le=...)`), so bad input is refused before any work.
Limits an operator configures (text length, tokens, texts per request, the max_new_tokens cap,
stop strings) are checked by the engine against Settings, with the same error body; for stop
strings the schema holds the ceiling a setting may not exceed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from model.decoding import FinishReason
from model.fill_blank import (
    BLANK,
    FORWARD_ONLY_CANDIDATES,
    MOST_CANDIDATES,
    WITH_BACKWARD_CANDIDATES,
)
from model.sampling import SEED_SPACE, SamplingOptions

STOP_STRINGS_CEILING = 64  # the most NEXTWORD_MAX_STOP_STRINGS may allow
STOP_CHARS_CEILING = 256  # the most NEXTWORD_MAX_STOP_CHARS may allow
SAMPLING = SamplingOptions()  # every sampling option's default: a request's unless it says
SEED_LIMIT = SEED_SPACE - 1  # the largest seed a request may give


def _well_formed(text: str) -> str:
    """Refuse lone surrogates: they are not characters and cannot be written back as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "text holds a lone surrogate (\\ud800-\\udfff), not valid Unicode"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_well_formed)]
StopString = Annotated[
    str,
    StringConstraints(min_length=1, max_length=STOP_CHARS_CEILING),
    AfterValidator(_well_formed),
]


MODEL_DESCRIPTION = (
    "the served model to ask, by name (GET /v1/models lists them, /info describes each); "
    "null: the default model, the first listed"
)
ModelName = Annotated[str | None, Field(description=MODEL_DESCRIPTION)]


def examples(*bodies: dict) -> ConfigDict:
    """A request model's config with the example bodies OpenAPI shows (/docs)."""
    return ConfigDict(json_schema_extra={"examples": list(bodies)})


class StrictRequest(BaseModel):
    """Unknown fields are an error, so that a misspelt parameter is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# -- errors -------------------------------------------------------------------------------------
class ErrorResponse(BaseModel):
    """The one error body of every endpoint."""

    error: str = Field(description="what was wrong and, where it helps, how to fix it")
    error_type: str = Field(
        description="validation_error, invalid_json, unsupported_by_model, too_large, "
        "overloaded, not_ready, timeout, not_found, model_not_found, method_not_allowed, "
        "unsupported_media_type, internal_error"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "top_k: Input should be greater than or equal to 1",
                 "error_type": "validation_error"}
            ]
        }
    )  # fmt: skip


# -- /predict-next ------------------------------------------------------------------------------
class PredictRequest(StrictRequest):
    """A text whose next word to predict."""

    model: ModelName = None
    text: Text = Field(default="", description="the text so far; empty: the start of a text")
    top_k: int = Field(default=10, ge=1, le=100, description="how many candidates to return")
    cache: bool = Field(
        default=True,
        description="use the model's cache pointer (its memory of this text's recent words), "
        "where the checkpoint has one (see /info); false: the network alone",
    )

    model_config = examples({"text": "我爱自然语言", "top_k": 10})


class InputToken(BaseModel):
    """A token of the input as the model read it."""

    token: str
    oov: bool = Field(description="out of vocabulary: the model read it as <unk>")


class NextToken(BaseModel):
    """A candidate next token."""

    token: str = Field(description="the word, or <eos> for the end of the text")
    prob: float
    logprob: float
    end_of_text: bool = Field(description="true for <eos>: the text ends here")


class PredictResponse(BaseModel):
    """The input's tokens and the most probable next tokens, best first."""

    tokens: list[InputToken]
    candidates: list[NextToken]


# -- /generate ----------------------------------------------------------------------------------
class GenerateRequest(StrictRequest):
    """A prompt to continue, and how to sample (names follow text-generation-inference)."""

    model: ModelName = None
    prompt: Text = Field(default="", description="text to continue; empty: the start of a text")
    max_new_tokens: int = Field(
        default=SAMPLING.max_new_tokens,
        ge=1,
        description="most tokens to generate (the server caps it: see /info)",
    )
    temperature: float = Field(
        default=SAMPLING.temperature,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="0 = greedy; higher = more random",
    )
    top_k: int | None = Field(
        default=SAMPLING.top_k,
        ge=1,
        le=1_000_000,
        description="sample among the k most probable; null = off",
    )
    top_p: float = Field(
        default=SAMPLING.top_p,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="nucleus: the smallest set with this mass",
    )
    repetition_penalty: float = Field(
        default=SAMPLING.repetition_penalty,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="> 1 makes repeated tokens less likely",
    )
    seed: int | None = Field(
        default=None, ge=0, le=SEED_LIMIT, description="null = random; the seed used is returned"
    )
    stop: list[StopString] = Field(
        default_factory=list,
        max_length=STOP_STRINGS_CEILING,
        description="end the text once it contains one of these (kept in the text); the "
        "server limits their number and length: see /info",
    )
    details: bool = Field(
        default=False, description="return every generated token with its logprob"
    )
    stream: bool = Field(default=False, description="answer with server-sent events, one per token")
    ignore_eos: bool = Field(
        default=SAMPLING.ignore_eos,
        description="never end at <eos>: always max_new_tokens (or a stop string)",
    )
    cache: bool = Field(
        default=SAMPLING.cache,
        description="sample from the model mixed with its cache pointer (its memory of this "
        "text's recent words), where the checkpoint has one (see /info). Off by default: each "
        "sampled word then votes for itself and the text repeats itself",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"prompt": "我爱", "max_new_tokens": 20, "temperature": 0.8, "top_k": 40,
                 "top_p": 0.95, "seed": 1, "stop": ["。"]}
            ]
        }
    )  # fmt: skip

    def to_sampling_options(self) -> SamplingOptions:
        """How this request samples and when it stops, for the engine."""
        return SamplingOptions.of(self.model_dump())


class Usage(BaseModel):
    """Token counts of a generation (<eos> is not counted as generated)."""

    prompt_tokens: int
    generated_tokens: int


class GeneratedToken(BaseModel):
    """One generated token; with stream: true, each token is one server-sent event of this
    shape, the last event a GenerateResponse (without details), then `data: [DONE]`; an
    ErrorResponse event on a failure mid-stream."""

    id: int
    token: str = Field(description="the vocabulary entry")
    text: str = Field(description="the text it adds, with the space before it if any")
    logprob: float


class GenerateResponse(BaseModel):
    """The continuation of the prompt. generated_text starts with a space where the language
    puts one after the prompt, so prompt + generated_text reads right."""

    generated_text: str
    finish_reason: FinishReason
    seed: int
    usage: Usage
    details: list[GeneratedToken] | None = None


# -- /perplexity --------------------------------------------------------------------------------
class PerplexityRequest(StrictRequest):
    """One text or several, to score."""

    model: ModelName = None
    # null is refused (give one of the two): the published schema says so
    text: Annotated[Text | None, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="one text (or texts)"
    )
    texts: Annotated[
        list[Text] | None,
        WithJsonSchema({"type": "array", "items": {"type": "string"}, "minItems": 1}),
    ] = Field(default=None, min_length=1, description="several texts (or text)")
    details: bool = Field(default=False, description="return each token's logprob and OOV flag")
    cache: bool = Field(
        default=True,
        description="use the model's cache pointer (its memory of this text's recent words), "
        "where the checkpoint has one (see /info); false: the network alone",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"text": "我爱北京天安门。"}, {"texts": ["我爱北京。", "今天天气很好。"]}],
            "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
        }
    )

    @model_validator(mode="after")
    def _one_of(self) -> PerplexityRequest:
        given = self.model_fields_set & {"text", "texts"}
        if len(given) != 1 or (self.text is None and self.texts is None):
            raise ValueError("give exactly one of text (a string) and texts (a list of strings)")
        return self

    def all_texts(self) -> list[str]:
        """The texts to score, in order."""
        return [self.text] if self.text is not None else list(self.texts or [])


class ScoredToken(BaseModel):
    """A target token and its log-probability; the last one of a text is <eos>."""

    token: str
    logprob: float
    oov: bool


class TextPerplexity(BaseModel):
    """How well the model predicts one text: the closing <eos> counts as a target."""

    perplexity: float
    num_tokens: int = Field(description="targets scored: the text's tokens plus <eos>")
    mean_nll: float = Field(description="mean negative log-likelihood per target, in nats")
    oov_count: int
    tokens: list[ScoredToken] | None = None


class PerplexityResponse(BaseModel):
    """One result per text, in the order given: {"text": ...} gets a list of one."""

    results: list[TextPerplexity]


# -- health, readiness, model card ------------------------------------------------------------
Marker = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"\S")]


class FillBlankRequest(StrictRequest):
    """One line with one blank, and how many ranked words to return."""

    model: ModelName = None
    text: Text = Field(
        description="one line with one blank: at the start, the line begins with the word; at "
        "the end, it ends with it"
    )
    blank: Marker = Field(default=BLANK, description="the marker of the blank in text")
    top_k: int = Field(
        default=10, ge=1, le=MOST_CANDIDATES, description="how many ranked words to return"
    )
    candidates: int | None = Field(
        default=None,
        ge=1,
        le=MOST_CANDIDATES,
        description="words each model proposes: the forward model after the left side, the "
        "backward model before the right side; where both lists hold fewer than top_k distinct "
        f"words, the forward model proposes more. null: {FORWARD_ONLY_CANDIDATES} with the "
        f"forward model alone, {WITH_BACKWARD_CANDIDATES} each with a backward model. More "
        "words: the right one ranked more often, at more time (docs/fill-blank.md)",
    )
    backward: bool = Field(
        default=True,
        description="also ask a backward model, where one is served, for words that fit the "
        "right side (better words, more time: docs/fill-blank.md); false: the forward one only",
    )

    model_config = examples({"text": "中国___发展很快。", "top_k": 10})


class FilledWord(BaseModel):
    """A word in the blank, with what each model makes of it."""

    token: str
    line_logprob: float = Field(
        description="log-probability of the whole filled line (closing <eos> included) under "
        "the forward model: the ranking"
    )
    left_prob: float = Field(description="the forward model's probability given the left side")
    right_prob: float | None = Field(
        description="the backward model's probability given the right side; null where no "
        "backward model is served or the word is not in its vocabulary"
    )
    proposed_by: list[Literal["forward", "backward"]]


class FillBlankResponse(BaseModel):
    """Each side as the forward model read it, the models asked, and the words, best first."""

    left: list[InputToken]
    right: list[InputToken]
    models: dict[str, str | None] = Field(description="the forward and the backward model's names")
    candidates: list[FilledWord]


class HealthResponse(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """Whether the model is loaded and runs; reason when it is not."""

    ready: bool
    reason: str | None = None


class ModelInfo(BaseModel):
    """One served model's card: network, vocabulary, tokenizer, corpus, training figures,
    checkpoint, versions (the service's and those the checkpoint recorded) and how it is
    served."""

    model: dict[str, str | int | float | bool | list[int]]
    tokenizer: dict[str, str | bool]
    corpus: dict[str, str | int | None]
    training: dict[str, int | float | None]
    checkpoint: dict[str, str]
    versions: dict[str, str]
    serving: dict[str, str | int | float | bool | None]


class InfoResponse(ModelInfo):
    """The default model's card (the fields a one-model server has always answered), the
    configured limits, and every served model's card by name."""

    limits: dict[str, int | float]
    default_model: str = Field(description="the model a request without `model` gets")
    models: dict[str, ModelInfo] = Field(
        description="each served model's card, by the name a request gives in `model`"
    )
