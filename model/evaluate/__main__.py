"""`python -m model.evaluate`: a checkpoint's perplexity on a split (see model/evaluate/cli.py)."""

from model.evaluate.cli import main

main()
