"""A run's report data, read back from the store (so a report can be made for any run, any time)."""

from __future__ import annotations

from typing import Any

from kernelwright.report.costs import run_costs
from kernelwright.report.run import Answer, NodeRow, RunReport
from kernelwright.store import NodeRecord, Store


def run_report(store: Store, run_id: str) -> RunReport:
    record = store.get_run(run_id)
    nodes = store.nodes(record.id)
    usage = store.usage(record.id)
    proposals = store.proposals(record.id)
    proposed = sum(len(p.candidates) for p in proposals)
    best = _best(nodes)
    answer = Answer(**record.answer) if record.answer else None
    source_id = answer.candidate_id if answer and answer.kind == "candidate" else None
    return RunReport(
        run_id=record.id, task_name=record.task_name, task_path=record.task_path, strategy=record.strategy,
        generator=record.generator, seed=record.seed, status=record.status, stop_reason=record.stop_reason,
        created_at=record.created_at, elapsed_s=record.elapsed_s, environment=record.environment,
        budget=record.config.get("budget", {}), nodes=[_row(n) for n in nodes], answer=answer,
        best_source=store.get_source(source_id) if source_id else (store.get_source(best.candidate_id)
                                                                    if best and answer is None else None),
        usage={"calls": usage.calls, "tokens": usage.tokens, "cost": usage.cost, "latency_s": usage.latency_s},
        duplicates=max(0, proposed - len(nodes)),
        generator_errors=[p.error for p in proposals if p.error],
        costs=run_costs(store, record.id),
    )


def _row(node: NodeRecord) -> NodeRow:
    verdict: dict[str, Any] = node.verdict or {"status": "not evaluated", "reason": "the run stopped first"}
    passed = verdict.get("status") == "passed"
    speedup = verdict.get("speedup") or {}
    sol = verdict.get("speed_of_light") or {}
    return NodeRow(
        seq=node.seq, candidate_id=node.candidate_id, name=node.name, status=verdict.get("status", ""),
        reason=str(verdict.get("reason", "")),
        time_ms=(verdict.get("time") or {}).get("median_ms") if passed else None,
        speedup_eager=speedup.get("eager") if passed else None,
        speedup_compile=speedup.get("compile") if passed else None,
        sol_fraction=sol.get("fraction") if passed else None,
        parents=list(node.parents), intent=node.intent, technique=node.technique, generator=node.generator,
        backends=list((verdict.get("candidate") or {}).get("backends", [])),
    )


def _best(nodes: list[NodeRecord]) -> NodeRecord | None:
    passed = [n for n in nodes if n.verdict and n.verdict.get("status") == "passed" and n.verdict.get("time")]
    return min(passed, key=lambda n: n.verdict["time"]["median_ms"], default=None)
