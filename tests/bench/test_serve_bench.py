"""bench.serve --bare-only: it times the service's own step (model/runner.py), with and without
the cache pointer, and its page reports exactly the figures it measured."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench.serve import main
from model.hardware import describe_cpu
from model.runner import Runner


def test_bare_only_times_the_runner_step_and_reports_its_figures(
    tuned_checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    steps: Counter[tuple[int, bool]] = Counter()  # (rows, cached) → steps timed
    real_step = Runner.step

    def counting_step(self: Runner):
        steps[(len(self.rows), self.rows[0].cache is not None)] += 1
        return real_step(self)

    monkeypatch.setattr(Runner, "step", counting_step)
    output = tmp_path / "cache-cost"
    main(["--bare-only", "--checkpoint", str(tuned_checkpoint), "--output", str(output)])
    assert set(steps) == {(1, False), (1, True), (32, False), (32, True)}
    assert len(set(steps.values())) == 1 and min(steps.values()) > 200  # every kind alike
    results = json.loads(output.with_suffix(".json").read_text())
    page = output.with_suffix(".md").read_text()
    for batch in (1, 32):
        t = results["bare"][f"none/{batch}"]
        cost = t["cache step"] / t["step"]
        row = f"| none | {batch} | {t['network']:.3f} | {t['step']:.3f} | {t['cache step']:.3f} |"
        assert f"{row} {cost:.2f}× |" in page
    ratio = results["bare"]["none/32"]["cache step"] / results["bare"]["none/32"]["step"]
    met = "yes" if ratio <= 1.3 else "NO"
    assert f"| cache: ms/token at batch 32 ≤ 1.3× without | {ratio:.2f}× | {met} |" in page
    assert f"Machine: {describe_cpu()}" in page
    assert "Generated tokens/s" not in page, "--bare-only started a server"
    assert not output.with_suffix(".png").exists()
