"""What a run spent, per role: LLM calls, tokens, dollars, seconds waiting for the model, and the
device time the evaluator spent on the candidates each role wrote.

A candidate's writer is the last role whose reply became its source (the coder or the debugger, from
its metadata's `roles`), or the generator's name for generators without roles (expert, scripted).
The planner and the judge write no code: their rows have LLM costs and no device time. Seconds are
summed per call, so with calls in flight at once a role's LLM seconds may exceed the run's wall time.
Device time is the evaluator's wall time per candidate on its device (a GPU, or the CPU for CPU
runs); a verdict reused from an earlier run counts the time it took then.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from kernelwright.store import Store

# Rows in the order a multi-role pipeline calls the roles; other writers (generators) follow by name.
ROLE_ORDER = ("judge", "planner", "coder", "debugger")


@dataclass
class RoleCost:
    role: str
    calls: int = 0  # LLM calls answered, from the response cache or not
    failed: int = 0  # LLM calls that ended in an error once retries were spent
    input_tokens: int = 0
    output_tokens: int = 0
    priced_usd: float = 0.0  # dollars of the answered calls whose model has a known price
    unpriced: int = 0  # answered, uncached calls whose price is unknown: not in priced_usd
    llm_s: float = 0.0  # wall time of its calls, retries and backoff included
    candidates: int = 0  # candidates it wrote
    device_s: float = 0.0  # evaluator time on those candidates

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_usd(self) -> float | None:
        """Dollars spent, or None when nothing it spent has a known price (a local model, a test server)."""
        return None if self.unpriced and not self.priced_usd else self.priced_usd

    def add(self, other: RoleCost) -> None:
        for f in fields(RoleCost):
            if f.name != "role":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class RunCosts:
    wall_s: float  # the run's elapsed time, over all its sessions
    roles: list[RoleCost] = field(default_factory=list)

    @property
    def total(self) -> RoleCost:
        total = RoleCost("total")
        for row in self.roles:
            total.add(row)
        return total

    @property
    def has_llm(self) -> bool:
        return any(row.calls or row.failed for row in self.roles)


def run_costs(store: Store, run_id: str) -> RunCosts:
    """The costs of run `run_id` (an exact id), per role, read from its LLM calls and its evaluations."""
    record = store.get_run(run_id)
    rows: dict[str, RoleCost] = {}

    def row(role: str) -> RoleCost:
        return rows.setdefault(role, RoleCost(role))

    for call in store.llm_calls(record.id):
        cost = row(call.role or "unnamed")
        cost.llm_s += call.latency_s or 0.0
        if call.error is not None:
            cost.failed += 1
            continue
        cost.calls += 1
        cost.input_tokens += call.prompt_tokens or 0
        cost.output_tokens += call.completion_tokens or 0
        if call.cost is not None:
            cost.priced_usd += call.cost
        elif not call.cached:  # a cached reply cost nothing, priced or not
            cost.unpriced += 1
    seconds = store.evaluation_seconds_by_candidate(record.id)
    for node in store.nodes(record.id):
        written = row(writer(node.metadata, node.generator))
        written.candidates += 1
        written.device_s += seconds.get(node.candidate_id, 0.0)
    ordered = sorted(rows.values(), key=lambda r: (ROLE_ORDER.index(r.role) if r.role in ROLE_ORDER
                                                   else len(ROLE_ORDER), r.role))
    return RunCosts(wall_s=record.elapsed_s or 0.0, roles=ordered)


def writer(metadata: dict[str, Any], generator: str) -> str:
    """The role whose reply became the candidate's source: the last usable one; else the generator."""
    roles = metadata.get("roles") or []
    return str(roles[-1]) if roles else generator


def format_usd(cost: RoleCost) -> str:
    """Dollars, and how many calls had no price: "$0.0123", "$0.0123 + 2 unpriced", or "-" when no
    call has a known price (or there were no calls)."""
    if cost.cost_usd is None or not cost.calls:
        return "-"
    text = f"${cost.cost_usd:.4f}"
    return f"{text} + {cost.unpriced} unpriced" if cost.unpriced else text
