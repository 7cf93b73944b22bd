"""Blanks filled with checkpoints in process, through the service's step (model/runner.py)
without its scheduler: each call's rows are one batch, as one request's rows are in the service,
and every row reads the model alone (no cache pointer). For the model's fill-blank tests."""

from __future__ import annotations

from collections.abc import Sequence

from model.checkpoint import Checkpoint, load_direction
from model.fill_blank import Filled, Gap, Proposer, words_to_ask
from model.rows import BlankRow, PredictRow, Row
from model.runner import Outbox, Runner


class BlankFiller:
    """Fills blanks with checkpoints in process, through the service's step (model/runner.py)
    without its scheduler: each call's rows are one batch, as one request's rows are in the
    service, and every row reads the model alone (no cache pointer). For bench.fill_blank and
    the tests; the service does the same with its engines."""

    def __init__(self, forward: Checkpoint, backward: Checkpoint | None = None):
        for checkpoint, direction in ((forward, "forward"), (backward, "backward")):
            if checkpoint is not None and load_direction(checkpoint) != direction:
                raise ValueError(
                    f"{checkpoint.directory} reads {load_direction(checkpoint)}, but the "
                    f"{direction} model of a blank must read {direction}"
                )
        self.runners = {"forward": Runner(forward)}
        if backward is not None:
            self.runners["backward"] = Runner(backward)

    def gap(self, left: Sequence[str], right: Sequence[str], direction: str) -> Gap:
        """The gap between the tokens left and right in the vocabulary of the model of
        direction."""
        vocab = self.runners[direction].vocab
        return Gap(tuple(vocab.encode(left)), tuple(vocab.encode(right)))

    def propose(self, gap: Gap, count: int, direction: str) -> list[str]:
        """The most probable words in the gap under the model of direction given the side it
        reads first, as many as words_to_ask(count) (<unk> never; <eos> may be among them):
        merge_proposals(..., count) keeps count real ones."""
        runner = self.runners[direction]
        asked = words_to_ask(count)
        ((_, prediction),) = _run(
            runner, PredictRow(gap.before(direction), runner.vocab.eos_id, asked)
        ).predicted
        return [candidate.token for candidate in prediction.candidates]

    def fill(self, gap: Gap, proposer: Proposer) -> tuple[list[str], list[Filled]]:
        """The forward model's words at the blank (best first, as many as proposer asks) and
        the lines filled with the words proposer chooses, ranked: one BlankRow, its lines one
        batch, as the service's engine runs a request (gap: in the forward model's
        vocabulary)."""
        runner = self.runners["forward"]
        row = BlankRow(gap.left, gap.right, runner.vocab.eos_id, proposer)
        ((_, lines),) = _run(runner, row).blanks
        forward = [candidate.token for candidate in lines.proposed]
        return forward, proposer.rank(gap, lines)


def _run(runner: Runner, row: Row) -> Outbox:
    """Every result of a row run to its end (a blank's lines one batch), finished rows leaving
    the batch as the service's scheduler takes them out."""
    runner.add([row])
    results = Outbox()
    try:
        while runner.rows:
            step = runner.step()
            results.predicted += step.predicted
            results.blanks += step.blanks
            runner.keep([i for i, row in enumerate(runner.rows) if not row.finished])
    finally:
        runner.keep([])
    return results
