"""Training curves: train and valid perplexity from the run's rows against tokens seen and
against minutes, on a log scale, including a row validated before any training (no train
perplexity, drawn as a gap); written as a 1000x400 PNG."""

import math
import struct

import model.train.curves as curves
from model.train.curves import plot_curves

ROWS = [
    {"tokens_seen": 0, "wall_seconds": 0.0, "train_ppl": None, "valid_ppl": 900.0},
    {"tokens_seen": 50_000, "wall_seconds": 30.0, "train_ppl": 400.0, "valid_ppl": 350.0},
    {"tokens_seen": 100_000, "wall_seconds": 60.0, "train_ppl": 250.0, "valid_ppl": 260.0},
]


def test_the_curves_plot_each_rows_perplexities_against_tokens_and_minutes(tmp_path, monkeypatch):
    drawn = []
    close = curves.plt.close
    monkeypatch.setattr(curves.plt, "close", lambda figure: drawn.append(figure) or close(figure))
    plot_curves(ROWS, tmp_path / "curves.png", "lstm 32 on tiny")
    (figure,) = drawn
    assert figure._suptitle.get_text() == "lstm 32 on tiny"
    for axis, xs in zip(figure.axes, ([0.0, 0.05, 0.1], [0.0, 0.5, 1.0]), strict=True):
        lines = {line.get_label(): line for line in axis.get_lines()}
        assert axis.get_yscale() == "log" and set(lines) == {"train", "valid"}
        assert list(lines["valid"].get_xdata()) == xs
        assert list(lines["valid"].get_ydata()) == [900.0, 350.0, 260.0]
        train = list(lines["train"].get_ydata())
        assert math.isnan(train[0]) and train[1:] == [400.0, 250.0]
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1000, 400)  # IHDR: width, height
