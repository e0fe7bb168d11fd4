"""A node: one candidate of a run with what the evaluator said about it.

Strategies compare nodes by time: a passed node with a lower median is better;
a node that did not pass has no time and is never better than one that did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernelwright.candidate import Candidate
from kernelwright.generate.base import Parent


@dataclass(frozen=True)
class Node:
    seq: int  # position among the run's evaluated candidates, from 0
    candidate: Candidate
    verdict: dict[str, Any]  # the verdict JSON
    parents: tuple[str, ...] = ()  # candidate ids
    intent: str = "draft"
    technique: str | None = None

    @property
    def id(self) -> str:
        return self.candidate.id

    @property
    def status(self) -> str:
        return self.verdict.get("status", "")

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def time_ms(self) -> float | None:
        """Median time when it passed; None otherwise."""
        time = self.verdict.get("time")
        return time["median_ms"] if self.passed and time else None

    def speedup(self, baseline: str = "eager") -> float | None:
        return (self.verdict.get("speedup") or {}).get(baseline) if self.passed else None

    @property
    def sol_fraction(self) -> float | None:
        sol = self.verdict.get("speed_of_light")
        return sol.get("fraction") if self.passed and sol else None

    def beats(self, other: Node | None, min_gain: float = 0.0) -> bool:
        """Faster than `other` by more than `min_gain` (a fraction of other's time)."""
        if self.time_ms is None:
            return False
        if other is None or other.time_ms is None:
            return True
        return self.time_ms < other.time_ms * (1.0 - min_gain)

    def as_parent(self) -> Parent:
        return Parent(self.candidate, self.verdict)

    def summary(self) -> dict[str, Any]:
        """One short line of data about this node, for a generator's view of the run's history."""
        # A generator that picked its own technique (the LLM planner) says so in metadata["plan"].
        technique = self.technique or (self.candidate.metadata.get("plan") or {}).get("technique")
        return {"seq": self.seq, "id": self.id, "status": self.status, "time_ms": self.time_ms,
                "speedup": self.speedup(), "intent": self.intent, "technique": technique,
                "reason": str(self.verdict.get("reason", ""))[:200]}


def fastest(nodes: list[Node]) -> Node | None:
    """The passed node with the lowest time; the earliest among equals."""
    best = None
    for node in nodes:
        if node.beats(best):
            best = node
    return best
