"""`python -m model.train`: train a model (see model/train/trainer.py)."""

from model.train.trainer import main

main()
