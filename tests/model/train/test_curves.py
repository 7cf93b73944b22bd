"""Training curves: a PNG of train and valid perplexity from the run's rows, including a row
validated before any training (no train perplexity)."""

from model.train.curves import plot_curves


def test_the_curves_are_a_png_even_with_a_row_before_any_training(tmp_path):
    rows = [
        {"tokens_seen": 0, "wall_seconds": 0.0, "train_ppl": None, "valid_ppl": 900.0},
        {"tokens_seen": 50_000, "wall_seconds": 30.0, "train_ppl": 400.0, "valid_ppl": 350.0},
        {"tokens_seen": 100_000, "wall_seconds": 60.0, "train_ppl": 250.0, "valid_ppl": 260.0},
    ]
    plot_curves(rows, tmp_path / "curves.png", "lstm 32 on tiny")
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
