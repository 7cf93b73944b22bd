"""bench.serve --bare-only: the bare decode step with and without the cache pointer."""

from __future__ import annotations

import json
from pathlib import Path

from bench.serve import main


def test_bare_only_measures_the_cache_cost(tuned_checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "cache-cost"
    main(["--bare-only", "--checkpoint", str(tuned_checkpoint), "--output", str(output)])
    results = json.loads(output.with_suffix(".json").read_text())
    for batch in (1, 32):
        timing = results["bare"][f"none/{batch}"]
        assert timing["network"] > 0 and timing["step"] > 0 and timing["cache step"] > 0
    page = output.with_suffix(".md").read_text()
    assert "| cache: ms/token at batch 32 ≤ 1.3× without |" in page
    assert "Generated tokens/s" not in page, "--bare-only started a server"
    assert not output.with_suffix(".png").exists()
