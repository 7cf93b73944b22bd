"""The request limits a deployment sets (NEXTWORD_MAX_*), checked in the HTTP layer before any
work reaches the engine, and the texts of a request encoded under them. Fixed limits live in
the schemas; these depend on the settings, so each error names the setting to change."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from app.errors import InvalidRequest, TooLarge
from app.settings import Settings
from model.sampling import SamplingOptions
from model.tokenizers import EncodedText, TextEncoder


def check_continues_forward(encoder: TextEncoder, route: str) -> None:
    """A 400 for a route that continues a text (generation, next-word prediction) when the
    model asked for reads right to left: it predicts the word before a text, not after it."""
    if encoder.direction != "forward":
        raise InvalidRequest(
            f"{route} continues a text to the right, but this model reads right to left "
            "(trained with --direction backward): it can score texts (/perplexity); to continue "
            "one, name a forward model in `model` (see /info) or serve one",
            status_code=400,
            error_type="unsupported_by_model",
        )


def check_text_count(count: int, field: str, settings: Settings) -> None:
    """TooLarge when a request holds more texts than NEXTWORD_MAX_TEXTS allows."""
    if count > settings.max_texts:
        raise TooLarge(
            f"{field} holds {count} texts; the limit is {settings.max_texts} (NEXTWORD_MAX_TEXTS)"
        )


def check_generation_limits(
    options: SamplingOptions, settings: Settings, length_field: str = "max_new_tokens"
) -> None:
    """InvalidRequest naming the field and the setting when options pass a configured limit;
    length_field: the request's name for max_new_tokens."""
    if options.max_new_tokens > settings.max_new_tokens:
        raise InvalidRequest(
            f"{length_field}: must be at most {settings.max_new_tokens} (NEXTWORD_MAX_NEW_TOKENS)",
            param=length_field,
        )
    if len(options.stop) > settings.max_stop_strings:
        raise InvalidRequest(
            f"stop: at most {settings.max_stop_strings} stop strings, got "
            f"{len(options.stop)} (NEXTWORD_MAX_STOP_STRINGS)",
            param="stop",
        )
    longest = max((len(s) for s in options.stop), default=0)
    if longest > settings.max_stop_chars:
        raise InvalidRequest(
            f"stop: a stop string is {longest} characters long; the limit is "
            f"{settings.max_stop_chars} (NEXTWORD_MAX_STOP_CHARS)",
            param="stop",
        )


async def encode_texts(
    encoder: TextEncoder, texts: Sequence[str], settings: Settings, with_specials: bool = False
) -> list[EncodedText]:
    """The texts as the model reads them, tokenized off the event loop, under the character and
    token limits; with_specials reads "<eos>" and "<unk>" written in a text as those tokens."""
    limit = settings.max_text_chars
    for text in texts:
        if len(text) > limit:
            raise TooLarge(
                f"a text is {len(text)} characters long; the limit is {limit} "
                "(NEXTWORD_MAX_TEXT_CHARS)"
            )
    encode = encoder.encode_with_specials if with_specials else encoder.encode
    encoded = await asyncio.to_thread(lambda: [encode(text) for text in texts])
    check_token_counts(encoded, settings)
    return encoded


def check_token_counts(encoded: Sequence[EncodedText], settings: Settings) -> None:
    """TooLarge for a text over NEXTWORD_MAX_TEXT_TOKENS."""
    limit = settings.max_text_tokens
    for item in encoded:
        if len(item.ids) > limit:
            raise TooLarge(
                f"a text has {len(item.ids)} tokens; the limit is {limit} "
                "(NEXTWORD_MAX_TEXT_TOKENS)"
            )


def check_filled_line(left: EncodedText, right: EncodedText, settings: Settings) -> None:
    """TooLarge when a line filled between left and right (one word in the blank) would be a
    text over NEXTWORD_MAX_TEXT_TOKENS: the filled line is a text like any other."""
    tokens, limit = len(left.ids) + 1 + len(right.ids), settings.max_text_tokens
    if tokens > limit:
        raise TooLarge(
            f"the filled line has {tokens} tokens; the limit is {limit} (NEXTWORD_MAX_TEXT_TOKENS)"
        )


def from_ids(encoder: TextEncoder, ids: Sequence[int], field: str) -> EncodedText:
    """A text given as token ids; InvalidRequest naming the field for an id outside the
    vocabulary."""
    try:
        return encoder.from_ids(ids)
    except ValueError as error:
        raise InvalidRequest(f"{field}: {error}", param=field) from error


async def encode_prompts(
    encoder: TextEncoder, prompts: Sequence[str | Sequence[int]], settings: Settings
) -> list[EncodedText]:
    """Prompts given as text or as token ids, as the model reads them, under the same limits as
    every text. In text, "<eos>" and "<unk>" are read as those tokens (one id each), so that a
    client's own tokenization and ours agree."""
    texts = [p for p in prompts if isinstance(p, str)]
    encoded = iter(await encode_texts(encoder, texts, settings, with_specials=True))
    results = [
        next(encoded) if isinstance(p, str) else from_ids(encoder, p, "prompt") for p in prompts
    ]
    check_token_counts(results, settings)
    return results
