"""Presets and the settings a run records: 'default' means one thing."""

from model.train.config import PRESETS, TrainConfig, parse_config, preset_differences


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
