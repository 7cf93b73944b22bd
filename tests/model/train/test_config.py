"""Presets and the settings a run records: 'default' means one thing; the flags of the
config, declared once and shared by every command that reads a corpus."""

import argparse

import pytest

from model.train.config import (
    CORPUS_FLAGS,
    PRESETS,
    TrainConfig,
    add_config_flags,
    build_parser,
    parse_config,
    preset_differences,
)


def test_a_run_of_the_default_preset_differs_from_it_in_nothing():
    recorded = parse_config(["--preset", "default", "--output", "elsewhere", "--threads", "1"])
    assert preset_differences("default", recorded.to_dict()) == {}


def test_a_changed_recipe_setting_is_named_with_both_values():
    recorded = TrainConfig(**(PRESETS["default"] | {"hidden_size": 256, "lr": 1e-3}))
    differences = preset_differences("default", recorded.to_dict())
    assert differences == {"hidden_size": (512, 256), "lr": (3e-3, 1e-3)}


def test_only_the_default_preset_writes_the_default_directory():
    assert parse_config(["--preset", "default"]).output == "checkpoints/default"
    assert parse_config([]).output == "checkpoints/run"  # TrainConfig's defaults are not it
    assert parse_config(["--preset", "large"]).output == "checkpoints/run"


def test_a_flag_not_given_is_none_so_presets_and_defaults_apply():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, [*CORPUS_FLAGS, "lowercase", "cutoffs", "context"])
    given = parser.parse_args(["--train-file", "t.txt", "--no-lowercase", "--cutoffs", "5", "9"])
    assert vars(given) == {
        **dict.fromkeys(CORPUS_FLAGS),
        "train_file": "t.txt",
        "lowercase": False,
        "cutoffs": [5, 9],
        "context": None,
    }
    with pytest.raises(SystemExit):
        parser.parse_args(["--context", "paragraph"])  # the contexts scoring reads


def test_every_command_declares_the_corpus_flags_with_model_trains_help():
    from model.evaluate.cli import build_parser as evaluate_parser
    from model.evaluate.tune_cache import build_parser as tune_parser
    from model.train.word2vec import build_parser as word2vec_parser

    def helps(parser: argparse.ArgumentParser) -> dict[str, str | None]:
        return {a.dest: a.help for a in parser._actions if a.dest in CORPUS_FLAGS}

    train = helps(build_parser())
    assert set(train) == set(CORPUS_FLAGS)
    for parser in (evaluate_parser(), tune_parser(), word2vec_parser()):
        assert helps(parser) == train
