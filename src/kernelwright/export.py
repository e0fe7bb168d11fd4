"""Training data from a run: one JSON line per LLM-written candidate, (prompt, reply, verdict, reward).

    kernelwright export RUN --format rl  [--out FILE]   every candidate the LLM generator wrote
    kernelwright export RUN --format sft [--out FILE]   only those that passed, as chat messages

The prompt is the conversation that produced the candidate's source: the
coder's or debugger's messages, including a reply that could not be read and
the feedback sent back about it, when there was one. The reply is the text the
candidate was parsed from (a whole file or SEARCH/REPLACE edits against the
parent, whose source is in the prompt).

Reward: 0.0 for a candidate that did not pass (any status but `passed`); for
one that passed, its speedup over the faster baseline of its verdict (the
smallest of its speedups: 1.0 is as fast as the faster of eager PyTorch and
torch.compile, 2.0 twice as fast), or null when no baseline was timed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from kernelwright.store import NodeRecord, Store

FORMATS = ("sft", "rl")
_WRITING_ROLES = ("coder", "debugger")


def reward(verdict: dict[str, Any] | None) -> float | None:
    """0.0 when not passed; else the speedup over the faster baseline (None when none was timed)."""
    if not verdict or verdict.get("status") != "passed":
        return 0.0
    speedups = [s for s in (verdict.get("speedup") or {}).values() if isinstance(s, (int, float))]
    return round(min(speedups), 4) if speedups else None


def records(store: Store, run_id: str, form: str) -> Iterator[dict[str, Any]]:
    """The run's export records in candidate order; `form` is "sft" or "rl"."""
    if form not in FORMATS:
        raise ValueError(f"unknown export format {form!r}; one of {', '.join(FORMATS)}")
    run = store.get_run(run_id)
    for node in store.nodes(run.id):
        call = _producing_call(node)
        if call is None or node.verdict is None:  # not the LLM's, or never evaluated (an interrupted run)
            continue
        verdict = node.verdict
        passed = verdict.get("status") == "passed"
        if form == "sft" and not passed:
            continue
        record = {
            "run": run.id, "task": run.task_name, "task_id": run.task_id, "seq": node.seq,
            "candidate": node.candidate_id, "role": call["role"], "intent": node.intent,
            "technique": node.technique, "prompt": call["messages"], "reply": call["reply"],
            "verdict": _summary(verdict), "reward": reward(verdict),
        }
        if form == "sft":
            record["messages"] = [*call["messages"], {"role": "assistant", "content": call["reply"]}]
        yield record


def write(store: Store, run_id: str, form: str, out: TextIO) -> int:
    """Write the records as JSON lines to `out`; the number written."""
    count = 0
    for record in records(store, run_id, form):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _producing_call(node: NodeRecord) -> dict[str, Any] | None:
    """The last coder or debugger call of the candidate's transcript whose reply was used."""
    transcript = (node.metadata or {}).get("transcript") or []
    used = [c for c in transcript if c.get("role") in _WRITING_ROLES and not c.get("error")]
    return used[-1] if used else None


def _summary(verdict: dict[str, Any]) -> dict[str, Any]:
    time = verdict.get("time") or {}
    sol = verdict.get("speed_of_light") or {}
    return {"status": verdict.get("status"), "reason": verdict.get("reason"), "time_ms": time.get("median_ms"),
            "speedup": verdict.get("speedup") or {}, "sol_fraction": sol.get("fraction")}
