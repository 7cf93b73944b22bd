"""Checkpoints: a directory holding `model.safetensors` (weights), `config.json` (the network's
constructor arguments, tokenizer spec, corpus, training statistics, versions) and `vocab.json`.

Nothing is ever unpickled. Every write goes to a temporary directory that then replaces the old
one by rename, so a crash leaves either the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from model.direction import DIRECTIONS
from model.pointer_cache import CacheConfig
from model.rnn import ModelConfig, RNNLanguageModel
from model.scoring import CONTEXTS
from model.tokenizers import TokenizerSpec
from model.vocab import Vocab

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
VOCAB = "vocab.json"
USER_DICT = "user_dict.txt"
FORMAT = "nextword-checkpoint/1"
INFERENCE = "inference"  # config.json key: how to read text (context, cache), set by tune_cache
_CONTEXT_NAMES = " or ".join(json.dumps(name) for name in CONTEXTS)  # '"line" or "document"'


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and what is wrong."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (eval mode), its vocabulary and tokenizer spec."""

    model: RNNLanguageModel
    vocab: Vocab
    tokenizer_spec: TokenizerSpec
    metadata: dict
    directory: Path
    weights_sha256: str = field(default="")


def _previous(directory: Path) -> Path:
    return directory.with_name(directory.name + ".previous")


def write_directory_atomically(
    directory: Path, write: Callable[[Path], None], keep: Iterable[str] = ()
) -> None:
    """Fill a fresh temporary directory with write(tmp), then swap it in for `directory`.

    Files named in `keep` are hard-linked from the current directory first (not rewritten);
    write() must replace, never modify, such a file. Between the two renames of the swap the
    old version is reachable as `<name>.previous`, which load_checkpoint falls back to.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    for name in keep:
        source = directory / name
        if source.is_file():
            os.link(source, temporary / name)
    write(temporary)
    # safetensors creates its files 0600 whatever the umask: give every file the mode open()
    # gives (0666 less the umask, read off the fresh directory's 0777 less the umask), so that
    # a checkpoint written on the host can be read by a container's user.
    file_mode = stat.S_IMODE(temporary.stat().st_mode) & 0o666
    for path in temporary.iterdir():  # data on disk before the rename makes it visible
        os.chmod(path, file_mode)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    previous = _previous(directory)
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        os.rename(directory, previous)
    os.rename(temporary, directory)
    shutil.rmtree(previous, ignore_errors=True)


def recover_interrupted_swap(directory: Path) -> None:
    """Put `<name>.previous` back in place when a crash fell between the two renames of a
    swap (the writer's own start-up calls this; readers just fall back to it)."""
    directory = Path(directory)
    if not directory.exists() and _previous(directory).is_dir():
        os.rename(_previous(directory), directory)


def replace_file(directory: Path, name: str) -> Path:
    """Path to write `name` inside a directory being built: unlinks a kept (hard-linked) copy
    first so the old checkpoint's file is never modified in place."""
    path = Path(directory) / name
    path.unlink(missing_ok=True)
    return path


def library_versions() -> dict[str, str]:
    """Versions recorded in every checkpoint."""
    import safetensors

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
    }


def unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors with tied (shared) weights stored once, contiguous, on the CPU."""
    seen: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        tensors[name] = tensor.detach().cpu().contiguous()
    return tensors


def write_checkpoint_files(
    directory: Path,
    model: RNNLanguageModel,
    vocab: Vocab,
    tokenizer_spec: TokenizerSpec,
    metadata: dict,
    write_weights: bool = True,
) -> None:
    """Write weights (unless told the directory keeps its current ones), config and vocabulary
    into an existing (temporary) directory."""
    spec = tokenizer_spec.to_dict()
    if tokenizer_spec.user_dict and Path(tokenizer_spec.user_dict).name != USER_DICT:
        shutil.copyfile(tokenizer_spec.user_dict, replace_file(directory, USER_DICT))
    if tokenizer_spec.user_dict:
        spec["user_dict"] = USER_DICT  # resolved against the checkpoint directory on load
    if write_weights:
        save_file(unique_state(model), str(replace_file(directory, WEIGHTS)))
    config = {
        "format": FORMAT,
        "model": model.config.to_dict(),
        "tokenizer": spec,
        **metadata,
        "versions": library_versions(),
    }
    text = json.dumps(config, ensure_ascii=False, indent=2)
    replace_file(directory, CONFIG).write_text(text, encoding="utf-8")
    vocab.save(replace_file(directory, VOCAB))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; an unreadable file raises CheckpointError saying why (the OS's own
    reason, e.g. Permission denied, with the fix for that case)."""
    try:
        return path.read_bytes()
    except PermissionError:
        raise CheckpointError(
            f"{path} cannot be read: Permission denied; make the checkpoint's files readable "
            f"by the user serving it (e.g. chmod -R a+rX {path.parent})"
        ) from None
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error.strerror}") from None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete")
    try:
        data = json.loads(_read_bytes(path).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def _load_weights(path: Path, model: RNNLanguageModel) -> str:
    """Copy the safetensors file's tensors into the model, checking names and shapes; returns
    the file's SHA-256."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint has no weights")
    data = _read_bytes(path)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as error:
        raise CheckpointError(f"{path} is damaged or truncated: {error}") from None
    expected = unique_state(model)
    problems = [f"missing tensor {n}" for n in expected if n not in tensors]
    problems += [f"unexpected tensor {n}" for n in tensors if n not in expected]
    problems += [
        f"{n} has shape {tuple(tensors[n].shape)}, config.json implies {tuple(t.shape)}"
        for n, t in expected.items()
        if n in tensors and tensors[n].shape != t.shape
    ]
    if problems:
        raise CheckpointError(f"{path} does not match config.json: " + "; ".join(problems[:5]))
    model.load_state_dict(tensors, strict=False)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(directory: Path | str, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint directory (or, after a crash mid-swap, its `.previous` copy) onto a
    device, in eval mode. Raises CheckpointError with a message naming the problem."""
    directory = Path(directory)
    if not directory.is_dir() and _previous(directory).is_dir():
        directory = _previous(directory)
    if not directory.is_dir():
        raise CheckpointError(
            f"checkpoint directory {directory} does not exist; train one with "
            f"`python -m model.train --output {directory}`"
        )
    config = read_config(directory)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG} is not a {FORMAT} checkpoint config")
    try:
        vocab = Vocab.from_json(_read_json(directory / VOCAB))
        model_config = ModelConfig.from_dict(config["model"])
        spec = TokenizerSpec.from_dict(config["tokenizer"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory}: invalid config or vocabulary: {error}") from None
    if model_config.vocab_size != len(vocab):
        raise CheckpointError(
            f"{directory / VOCAB} has {len(vocab)} entries but {directory / CONFIG} "
            f"says vocab_size {model_config.vocab_size}"
        )
    if spec.user_dict:
        spec = TokenizerSpec(**{**spec.to_dict(), "user_dict": str(directory / spec.user_dict)})
    model = RNNLanguageModel(model_config)
    digest = _load_weights(directory / WEIGHTS, model)
    return Checkpoint(model.to(device).eval(), vocab, spec, config, directory, digest)


def read_config(directory: Path | str) -> dict:
    """The parsed config.json of a checkpoint directory, without loading its weights: for tools
    that only need its records (training statistics, settings, inference). Raises
    CheckpointError naming the file when it is missing or not a JSON object."""
    return _read_json(Path(directory) / CONFIG)


def update_inference_config(directory: Path | str, entries: dict) -> None:
    """Merge `entries` into config.json's "inference" object, every other key untouched. The
    new file is written beside the old one and renamed over it, so a reader sees one or the
    other, and a config.json hard-linked into another checkpoint is not modified."""
    path = Path(directory) / CONFIG
    config = _read_json(path)
    config[INFERENCE] = {**config.get(INFERENCE, {}), **entries}
    temporary = path.with_name(f".{CONFIG}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(config, ensure_ascii=False, indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
    os.replace(temporary, path)


def load_inference_config(source: Checkpoint | dict) -> tuple[str, CacheConfig | None]:
    """(context, cache settings) a checkpoint (or its config.json contents) was tuned for by
    `python -m model.evaluate.tune_cache`; ("line", None) when it was never tuned."""
    metadata = source.metadata if isinstance(source, Checkpoint) else source
    inference = metadata.get(INFERENCE) or {}
    context = inference.get("context", "line")
    if context not in CONTEXTS:
        raise CheckpointError(f"{CONFIG}: inference.context must be {_CONTEXT_NAMES}")
    try:
        cache = inference.get("cache")
        return context, CacheConfig.from_dict(cache) if cache is not None else None
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{CONFIG}: invalid inference.cache: {error}") from None


def load_cache_scope(source: Checkpoint | dict) -> str:
    """Where the tuned cache starts empty: "line" (every line) or "document" (once, so a
    line-context reading can still recall earlier lines); the tuned context when not recorded."""
    metadata = source.metadata if isinstance(source, Checkpoint) else source
    inference = metadata.get(INFERENCE) or {}
    scope = inference.get("cache_scope", inference.get("context", "line"))
    if scope not in CONTEXTS:
        raise CheckpointError(f"{CONFIG}: inference.cache_scope must be {_CONTEXT_NAMES}")
    return scope


def load_direction(source: Checkpoint | dict) -> str:
    """Which way the checkpoint's model reads text: "forward" (left to right, the default
    where none is recorded) or "backward" (trained with --direction backward)."""
    metadata = source.metadata if isinstance(source, Checkpoint) else source
    direction = (metadata.get(INFERENCE) or {}).get("direction", "forward")
    if direction not in DIRECTIONS:
        raise CheckpointError(f"{CONFIG}: inference.direction must be one of {DIRECTIONS}")
    return direction
