"""A bench's results: per task and per suite, read back from the store, and as bench.json.

Everything here is derived from the store (runs, nodes, verdicts, proposals,
LLM calls), so the results of any bench, finished or not, can be rebuilt at
any time; bench.json is the same data for machines and for `report --compare`.
A single optimization run reads as a bench of one task.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.bench.metrics import PASSED, suite_metrics
from kernelwright.search.controller import DEFAULT_GENERATOR
from kernelwright.store import BenchTaskRecord, NodeRecord, RunRecord, Store

FORMAT = "kernelwright-bench/1"
# How far a candidate got through the evaluator: a task that passed nothing is summed up by the
# candidate that got furthest (an incorrect one is closer to working than one that did not compile).
STAGE = {"static_rejected": 0, "compile_error": 1, "unsupported": 2, "runtime_error": 2, "timeout": 2,
         "incorrect": 3, "rejected": 4, PASSED: 5}
REASON_CHARS = 300


class ResultsError(Exception):
    """A results file that cannot be read; one line naming it."""


@dataclass
class TaskResult:
    key: str  # the task's name in its suite
    task_id: str
    task_path: str
    variants: int | None = None  # shape variants besides the task's own shapes (None: not known)
    run_id: str | None = None
    run_status: str = "not run"
    stop_reason: str | None = None
    error: str | None = None  # the task itself cannot be benched; it is then not scored
    # "passed"; else the status of the candidate that got furthest; "no_candidates" (the run ended without
    # any), "not_finished" (its run was cut short before any), "task_error", "not_run"
    verdict: str = "not_run"
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # evaluated candidates per verdict status
    best: str | None = None  # the fastest passed candidate's name
    time_ms: float | None = None  # its median
    baselines_ms: dict[str, float] = field(default_factory=dict)
    speedup: dict[str, float] = field(default_factory=dict)  # its speedup per baseline
    sol_fraction: float | None = None
    sol_bound: str | None = None  # "memory" or "compute": the larger term of its floor
    answer: str | None = None  # the run's answer: "candidate", "eager" or "compile"
    answer_ms: float | None = None
    answer_speedup: dict[str, float] = field(default_factory=dict)
    variant_passed: int = 0
    variant_reached: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    generate_s: float = 0.0
    device_s: float = 0.0

    @property
    def candidates(self) -> int:
        return sum(self.counts.values())

    @property
    def variant_pass_rate(self) -> float | None:
        return self.variant_passed / self.variant_reached if self.variant_reached else None


@dataclass
class BenchResult:
    id: str
    kind: str  # "bench", or "run" for one optimization run read as a bench of one task
    suite: str
    task_filter: str | None
    generator: str
    strategy: str
    budget: dict[str, Any]
    baselines: list[str]
    status: str
    created_at: float
    finished_at: float | None
    environment: dict[str, Any]
    tasks: list[TaskResult]
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @property
    def label(self) -> str:
        """A short name for the comparison report: what produced these results."""
        return f"{self.kind} {self.id} ({self.generator}, {self.strategy})"


def bench_result(store: Store, bench_id: str) -> BenchResult:
    """The results of bench `bench_id` (or a unique prefix), as far as it got."""
    record = store.get_bench(bench_id)
    tasks = [task_result(store, row) for row in store.bench_tasks(record.id)]
    config = record.config
    baselines = list(config.get("eval", {}).get("baselines", []))
    return BenchResult(
        id=record.id, kind="bench", suite=record.suite, task_filter=record.task_filter,
        generator=config.get("generator") or DEFAULT_GENERATOR, strategy=config.get("strategy", ""),
        budget=config.get("budget", {}),
        baselines=baselines, status=record.status, created_at=record.created_at, finished_at=record.finished_at,
        environment=record.environment, tasks=tasks, metrics=suite_metrics(tasks, baselines),
    )


def task_result(store: Store, row: BenchTaskRecord) -> TaskResult:
    """One task of a bench, as far as its run got."""
    task = TaskResult(key=row.task_key, task_id=row.task_id, task_path=row.task_path, variants=row.variants)
    if row.error is not None:
        task.error, task.verdict, task.reason = row.error, "task_error", row.error
    if row.run_id is not None:
        _fill_from_run(store, store.get_run(row.run_id), task)
    return task


def run_result(store: Store, run_id: str) -> BenchResult:
    """One optimization run read as a bench of its one task."""
    record = store.get_run(run_id)
    task = TaskResult(key=record.task_name, task_id=record.task_id, task_path=record.task_path)
    _fill_from_run(store, record, task)
    baselines = list(record.config.get("eval", {}).get("baselines", []))
    return BenchResult(
        id=record.id, kind="run", suite=record.task_path, task_filter=None, generator=record.generator,
        strategy=record.strategy, budget=record.config.get("budget", {}), baselines=baselines,
        status=record.status, created_at=record.created_at, finished_at=record.finished_at,
        environment=record.environment, tasks=[task], metrics=suite_metrics([task], baselines),
    )


def load_results(path: Path) -> BenchResult:
    """A bench.json written by `kernelwright bench`."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ResultsError(f"{path}: cannot read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ResultsError(f"{path}: not a kernelwright bench file (format {found!r}, expected {FORMAT!r})")
    try:
        fields = {k: v for k, v in data.items() if k != "format"}
        fields["tasks"] = [TaskResult(**t) for t in fields["tasks"]]
        # The metrics follow from the tasks: recomputed, so two files compare under one set of formulas.
        fields["metrics"] = suite_metrics(fields["tasks"], fields["baselines"])
        return BenchResult(**fields)
    except (TypeError, KeyError, AttributeError) as e:
        raise ResultsError(f"{path}: malformed bench file ({e})") from None


def _fill_from_run(store: Store, record: RunRecord, task: TaskResult) -> None:
    """The task's numbers from its run: verdicts of its candidates, its answer, what it cost."""
    nodes = [n for n in store.nodes(record.id) if n.verdict is not None]
    task.run_id, task.run_status, task.stop_reason = record.id, record.status, record.stop_reason
    for node in nodes:
        status = node.verdict.get("status", "")
        task.counts[status] = task.counts.get(status, 0) + 1
        if _reached_variants(node):
            task.variant_reached += 1
            task.variant_passed += status == PASSED
    if task.error is None:
        task.verdict, task.reason = _summary(nodes, record)
    best = _fastest(nodes)
    if best is not None:
        verdict = best.verdict
        task.best, task.time_ms = best.name, verdict["time"]["median_ms"]
        task.speedup = dict(verdict.get("speedup") or {})
        light = verdict.get("speed_of_light") or {}
        task.sol_fraction, task.sol_bound = light.get("fraction"), light.get("bound")
        task.baselines_ms = {name: t["median_ms"] for name, t in (verdict.get("baselines") or {}).items()}
    if task.variants is None and best is not None:
        task.variants = (best.verdict.get("correctness") or {}).get("variants", 1) - 1
    if record.answer:
        answer = record.answer
        task.answer, task.answer_ms = answer.get("kind"), answer.get("time_ms")
        task.baselines_ms = task.baselines_ms or dict(answer.get("baselines_ms") or {})
        if task.answer_ms:
            task.answer_speedup = {name: ms / task.answer_ms for name, ms in task.baselines_ms.items()}
    usage = store.usage(record.id)
    task.tokens, task.cost_usd = usage.tokens, usage.cost
    task.wall_s = record.elapsed_s
    task.generate_s = sum(p.seconds for p in store.proposals(record.id))
    task.device_s = store.evaluation_seconds(record.id)


def _reached_variants(node: NodeRecord) -> bool:
    """Whether the candidate was correct on the task's own shapes and so was tried on its shape variants.

    The evaluator tries the task's own shapes first and stops at the first
    failure, naming the failing trial: a mismatch on "shape variant ..." means
    every trial on the task's shapes matched. (A crash on a variant names no
    trial, so it is not counted: the rate is of wrong answers, not crashes.)
    """
    verdict = node.verdict or {}
    if verdict.get("status") == PASSED:
        return (verdict.get("correctness") or {}).get("variants", 1) > 1
    trial = str((verdict.get("details") or {}).get("trial", ""))
    return verdict.get("status") == "incorrect" and trial.startswith("shape variant")


def _summary(nodes: list[NodeRecord], record: RunRecord) -> tuple[str, str]:
    """The task's verdict and its reason: passed, or how far the furthest candidate got."""
    if not nodes:
        if record.status != "finished":  # interrupted (or still running): nothing to score yet
            return "not_finished", record.stop_reason or f"its run is {record.status}"
        return "no_candidates", record.stop_reason or "no candidate was evaluated"
    furthest = max(nodes, key=lambda n: (STAGE.get(n.verdict.get("status", ""), -1), -n.seq))
    reason = " ".join(str(furthest.verdict.get("reason", "")).split())
    return furthest.verdict.get("status", ""), f"{furthest.name}: {reason}"[:REASON_CHARS]


def _fastest(nodes: list[NodeRecord]) -> NodeRecord | None:
    passed = [n for n in nodes if n.verdict.get("status") == PASSED and n.verdict.get("time")]
    return min(passed, key=lambda n: (n.verdict["time"]["median_ms"], n.seq), default=None)
