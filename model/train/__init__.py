"""What only training uses: configuration and presets, corpora and their splits, the training
loop (trainer) with what a run builds (build), its budget (budget), validation (validation) and
what it writes (run_directory), snapshots to resume from, weight averaging, several processes,
word2vec start vectors and the curves. `python -m model.train` runs it (model/train/__main__.py)."""
