"""What a run spent per role (tokens, dollars, LLM time, device time), from a hand-filled store: the
numbers, the run report's Cost section, and the table that `optimize` prints at its end."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from kernelwright.cli import app  # noqa: F401  (the CLI's modules import each other through it)
from kernelwright.cli_runs import costs_table
from kernelwright.report import render_html, render_markdown
from kernelwright.report.build import run_report
from kernelwright.report.costs import RoleCost, format_usd, run_costs
from kernelwright.store import LLMCall, NodeRecord, RunRecord, Store

EVAL_KEY = "k1"


def add_run(store: Store, run_id: str, generator: str, elapsed_s: float) -> None:
    store.create_run(RunRecord(id=run_id, key=run_id, task_id="task-1", task_name="gelu", task_path="gelu.py",
                               strategy="refine", generator=generator, seed=0, config={}))
    store.update_run(run_id, elapsed_s=elapsed_s, status="finished")


def add_node(store: Store, run_id: str, seq: int, candidate_id: str, roles: list[str] | None, seconds: float,
             status: str = "passed") -> None:
    store.put_source(candidate_id, f"# {candidate_id}\n")
    # A verdict evaluated in another run (a source seen before) is stored once, with its first time.
    store.record_evaluation(candidate_id, "task-1", EVAL_KEY, {"status": status, "reason": "-"}, seconds)
    metadata = {"roles": roles} if roles is not None else {}
    store.record_node(NodeRecord(run_id, seq, candidate_id, seq, f"c{seq}", [], "llm" if roles else "expert",
                                 "draft", None, metadata, EVAL_KEY))


def call(run_id: str, role: str, tokens: tuple[int, int], cost: float | None, seconds: float,
         cached: bool = False, error: str | None = None) -> LLMCall:
    return LLMCall(run_id=run_id, role=role, provider="openai", model="m", prompt="p", reply="r",
                   prompt_tokens=tokens[0], completion_tokens=tokens[1], cost=cost, latency_s=seconds,
                   cached=cached, error=error)


@pytest.fixture
def store() -> Store:
    store = Store(":memory:")
    add_run(store, "r1", "llm", elapsed_s=95.0)
    for record in (
        call("r1", "coder", (1000, 200), 0.02, 4.0),
        call("r1", "coder", (0, 0), 0.0, 0.0, cached=True),  # from the response cache: nothing spent
        call("r1", "planner", (300, 20), 0.004, 1.0),
        call("r1", "planner", (0, 0), None, 6.0, error="gave up after 5 attempts"),  # its retries took time
        call("r1", "debugger", (800, 100), None, 3.0),  # a model with no known price
        call("other", "coder", (9, 9), 9.0, 9.0),  # another run's call: not this run's cost
    ):
        store.record_llm_call(record)
    add_node(store, "r1", 0, "a", ["coder"], 20.0, status="incorrect")
    add_node(store, "r1", 1, "b", ["debugger"], 12.5)
    add_node(store, "r1", 2, "c", ["planner", "coder"], 7.5)  # the planner advised; the coder wrote it
    return store


def test_costs_per_role_count_tokens_dollars_llm_time_and_the_device_time_of_what_each_wrote(store: Store) -> None:
    costs = run_costs(store, "r1")
    assert [r.role for r in costs.roles] == ["planner", "coder", "debugger"]
    planner, coder, debugger = costs.roles
    assert (planner.calls, planner.failed, planner.tokens, planner.cost_usd, planner.llm_s) == (1, 1, 320, 0.004, 7.0)
    assert (planner.candidates, planner.device_s) == (0, 0.0)
    assert (coder.calls, coder.input_tokens, coder.output_tokens, coder.unpriced) == (2, 1000, 200, 0)
    assert coder.cost_usd == pytest.approx(0.02) and (coder.candidates, coder.device_s) == (2, 27.5)
    assert debugger.cost_usd is None and (debugger.candidates, debugger.device_s) == (1, 12.5)
    total = costs.total
    assert (total.calls, total.failed, total.tokens, total.candidates) == (4, 1, 2420, 3)
    assert (total.cost_usd, total.unpriced, total.llm_s, total.device_s) == (pytest.approx(0.024), 1, 14.0, 40.0)
    assert costs.wall_s == 95.0 and costs.has_llm
    assert (format_usd(coder), format_usd(debugger), format_usd(total)) == ("$0.0200", "-", "$0.0240 + 1 unpriced")
    assert format_usd(RoleCost("expert")) == "-"  # no calls: nothing to price


def test_a_run_without_an_llm_has_its_generators_device_time_and_no_llm_rows() -> None:
    store = Store(":memory:")
    add_run(store, "r2", "expert", elapsed_s=30.0)
    add_node(store, "r2", 0, "x", None, 11.0)
    add_node(store, "r2", 1, "y", None, 4.0)
    costs = run_costs(store, "r2")
    assert [(r.role, r.calls, r.candidates, r.device_s) for r in costs.roles] == [("expert", 0, 2, 15.0)]
    assert not costs.has_llm


def test_the_run_report_shows_the_cost_per_role(store: Store) -> None:
    report = run_report(store, "r1")
    markdown = render_markdown(report)
    assert "## Cost\n\nWall time 1 min 35 s." in markdown
    assert "| planner | 1 (+1 failed) | 300 | 20 | $0.0040 | 7.0 s | 0 | 0.0 s |" in markdown
    assert "| coder | 2 | 1000 | 200 | $0.0200 | 4.0 s | 2 | 27.5 s |" in markdown
    assert "| debugger | 1 | 800 | 100 | - | 3.0 s | 1 | 12.5 s |" in markdown
    assert "| total | 4 (+1 failed) | 2100 | 320 | $0.0240 + 1 unpriced | 14.0 s | 3 | 40.0 s |" in markdown
    html = render_html(report)
    section = html[html.index('<section id="costs">'):html.index('<section id="candidates">')]
    cells = [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", section, re.S)]
    assert cells[:8] == ["planner", "1 (+1 failed)", "300", "20", "$0.0040", "7.0 s", "0", "0.0 s"]
    assert '<tr class="total">' in section and "$0.0240 + 1 unpriced" in section


def test_the_end_of_optimize_prints_the_same_numbers(store: Store) -> None:
    console = Console(record=True, width=160)
    console.print(costs_table(run_costs(store, "r1")))
    text = console.export_text()
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}
    assert rows["coder"] == ["2", "1,000", "200", "$0.0200", "4.0 s", "2", "27.5 s"]
    assert rows["total"] == ["4 (+1 failed)", "2,100", "320", "$0.0240 + 1 unpriced", "14.0 s", "3", "40.0 s"]
