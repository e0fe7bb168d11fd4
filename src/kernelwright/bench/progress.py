"""What a bench tells whoever watches it (the CLI's live view), and how.

Tasks may run side by side (one per lane, lanes.py), each in a process of its
own, so a run's progress travels as a `RunStatus`: a small picklable snapshot,
not the Run object itself. Every event names the task by its index in the
bench.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kernelwright.store import BenchTaskRecord

if TYPE_CHECKING:
    from kernelwright.bench.results import TaskResult
    from kernelwright.search.run import Run


@dataclass(frozen=True)
class RunStatus:
    """Where one task's run stands."""

    run_id: str
    candidates: int  # evaluated so far
    budget: int
    in_flight: int  # evaluations running now
    best_speedup: float | None  # the best passed candidate's speedup over eager; None before a pass
    elapsed_s: float

    @classmethod
    def of(cls, run: Run) -> RunStatus:
        best = run.best.speedup() if run.best else None
        return cls(run.id, len(run.nodes), run.config.budget.candidates, run.in_flight, best, run.elapsed_s)


class BenchProgress(Protocol):
    def bench_started(self, bench_id: str, resumed: bool, total: int) -> None: ...

    def task_skipped(self, index: int, total: int, result: TaskResult) -> None: ...

    def task_started(self, index: int, total: int, row: BenchTaskRecord) -> None: ...

    def run_started(self, index: int, status: RunStatus, resumed: bool) -> None: ...

    def run_progress(self, index: int, status: RunStatus) -> None: ...

    def task_finished(self, index: int, total: int, result: TaskResult) -> None: ...

    def stopping(self, lanes: int, grace_s: float) -> None: ...

    def lane_stopped(self, lane: int, seconds: float, killed: bool) -> None: ...


class Unwatched:
    """No one watches: every event is dropped."""

    def bench_started(self, bench_id: str, resumed: bool, total: int) -> None:
        pass

    def task_skipped(self, index: int, total: int, result: TaskResult) -> None:
        pass

    def task_started(self, index: int, total: int, row: BenchTaskRecord) -> None:
        pass

    def run_started(self, index: int, status: RunStatus, resumed: bool) -> None:
        pass

    def run_progress(self, index: int, status: RunStatus) -> None:
        pass

    def task_finished(self, index: int, total: int, result: TaskResult) -> None:
        pass

    def stopping(self, lanes: int, grace_s: float) -> None:
        pass

    def lane_stopped(self, lane: int, seconds: float, killed: bool) -> None:
        pass
