"""load_served_model: the weights the service would serve, from one home."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from model.quantize import Int8Recurrent
from model.served import load_served_model


def test_none_serves_the_checkpoints_float_weights(tiny_checkpoint: Path) -> None:
    served = load_served_model(tiny_checkpoint, quantize="none")
    assert isinstance(served.model.rnn, nn.RNNBase)
    assert not served.model.training


def test_int8_serves_the_int8_recurrent_layer(tiny_checkpoint: Path) -> None:
    served = load_served_model(tiny_checkpoint, quantize="int8")
    assert isinstance(served.model.rnn, Int8Recurrent)


def test_int8_off_the_cpu_is_refused_before_loading(tmp_path: Path) -> None:
    # the directory does not exist: the choice is refused first, with the way out
    with pytest.raises(ValueError, match="choose none or auto"):
        load_served_model(tmp_path / "missing", device="cuda", quantize="int8")
