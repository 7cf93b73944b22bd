"""Offline evaluation tools: the evaluate command (cli), dynamic evaluation and the tuning of the
reading a checkpoint records (tune_cache). `python -m model.evaluate` runs the first."""
