"""The generator interface: `propose(task, context) -> list[Candidate]`.

A generator writes candidate kernels. The search strategy decides what it is
asked for: a first draft (no parents), a repair of a failed parent, an
improvement or a mutation of a good one, a crossover of two, perhaps with one
named optimization technique. The context carries everything the evaluator
said about the parents (their verdict JSON: errors, mismatches, times,
speed-of-light fraction, profile), a summary of the run so far, and the
budget left, so a generator never reaches into the store itself.

`propose` may be a plain method or a coroutine (`async def`); the search runs
several at once either way. A generator that raises is recorded as a failed
proposal, never a crashed run.

Generators keep no decisions between calls: what they write follows from the
task and the context alone. A resumed run replays its recorded proposals
without asking the generator again, and then asks it afresh with the same
contexts an uninterrupted run would have given.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kernelwright.candidate import Candidate
from kernelwright.task import Task

# What a strategy asks for. Generators may treat several alike (a scripted
# generator ignores them all), but must accept every one.
INTENTS = ("draft", "repair", "improve", "mutate", "crossover")


class GeneratorError(Exception):
    """A generator that cannot be built or asked (unknown name, bad argument); one line."""


@dataclass(frozen=True)
class Parent:
    """A candidate the strategy chose to build on, with its verdict (the verdict JSON contract)."""

    candidate: Candidate
    verdict: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.verdict.get("status") == "passed"


@dataclass(frozen=True)
class Context:
    intent: str  # one of INTENTS
    parents: tuple[Parent, ...] = ()  # none for a draft, one for repair/improve/mutate, two for crossover
    technique: str | None = None  # an optimization to apply ("tiling", "fusion", ...), when the strategy picks one
    count: int = 1  # how many candidates are wanted; more are cut, fewer are fine
    seed: int = 0  # differs per request and is the same on a resumed run: deterministic generators use it
    ordinal: int = 0  # candidates asked for by earlier requests of this run (a script reads its place here)
    budget_left: int = 0  # candidates the run may still evaluate, this request included
    best: Parent | None = None  # the run's fastest verified candidate so far
    history: tuple[dict[str, Any], ...] = ()  # one short line of data per earlier candidate of the run
    run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific hints (e.g. template parameters)


@runtime_checkable
class Generator(Protocol):
    name: str

    def propose(self, task: Task, context: Context) -> list[Candidate] | Awaitable[list[Candidate]]:
        """Candidates for `task` as `context` asks; may return fewer than asked, or none."""
        ...

    # A generator that holds processes may also define close(), called when its owner is done with it.
