"""End to end: `kernelwright optimize --generator llm --model M --base-url URL` against a real
OpenAI-compatible server on loopback (tests/llm_server.py), through the openai SDK, with CPU C++
candidates that the evaluator compiles, verifies and times for real; a refine run and an evolve run.

The server fails one request with 429 and one with 500: the client must retry both with the same
request. Every later prompt must carry the evaluator's verdict on what came before it. Both runs
share one store, so the evolve run's drafts that the refine run already judged reuse its verdicts
(as any run does for a source seen before), which keeps this file near two minutes on two cores.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernelwright.cli_options import apply_flags
from kernelwright.config import ConfigError, load_config
from kernelwright.store import Store
from llm_server import ChatServer, Exchange, replies_from

ROOT = Path(__file__).parent
FIXTURES = ROOT / "fixtures"
TASK = FIXTURES / "tasks" / "gelu.py"
QUICK = FIXTURES / "runs" / "cpu_quick.toml"
REFINE_REPLIES = FIXTURES / "llm" / "gelu_refine"
EVOLVE_REPLIES = FIXTURES / "llm" / "gelu_evolve"
ROLES = ("planner", "coder", "debugger", "judge")
MODEL = "test-model"


@dataclass
class E2ERun:
    result: subprocess.CompletedProcess[str]
    log: list[Exchange]
    url: str
    db: Path
    out: Path
    run_id: str


@dataclass
class Call:
    role: str
    prompt: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None
    created_at: float


def optimize(url: str, strategy: str, budget: int, folder: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kernelwright", "optimize", str(TASK), "--generator", "llm", "--model", MODEL,
               "--base-url", url, "--strategy", strategy, "--budget", str(budget), "--config", str(QUICK),
               "--db", str(folder / "runs.db"), "--out", str(folder / strategy)]
    # No key in the environment: a server on loopback needs none, and none may leak to it.
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(command, capture_output=True, text=True, timeout=280, env={**env, "COLUMNS": "200"})


def e2e_run(folder: Path, strategy: str, budget: int, replies: dict[str, list[str]],
            failures: dict[int, int]) -> E2ERun:
    with ChatServer(replies, failures) as server:
        result = optimize(server.url, strategy, budget, folder)
    assert result.returncode == 0, result.stderr + result.stdout
    with Store(folder / "runs.db") as store:
        run_id = next(r.id for r in store.list_runs() if r.strategy == strategy)
    return E2ERun(result, server.log, server.url, folder / "runs.db", folder / strategy, run_id)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm_e2e")


@pytest.fixture(scope="module")
def refine(folder: Path) -> E2ERun:
    # coder: a draft with a wrong constant, a reply with no code, then one that works; the debugger
    # fixes the constant with an edit quoted at another indentation; the planner picks vectorization.
    # Request 2 (the debugger's) gets a 429, request 5 (the coder's after the planner) a 500.
    return e2e_run(folder, "refine", 3, replies_from(REFINE_REPLIES, ROLES), failures={2: 429, 5: 500})


@pytest.fixture(scope="module")
def evolve(folder: Path, refine: E2ERun) -> E2ERun:
    # Three islands ask for three drafts at once, then one more candidate fits the budget: a draft or,
    # from an island with a verified member, a planner's technique and a mutation by the coder.
    # The drafts are the refine run's three files (verdicts reused); the fourth is new.
    with Store(refine.db) as store:
        sources = [store.get_source(n.candidate_id) for n in store.nodes(refine.run_id)]
    coder = [f"```python\n{source}```\n" for source in sources] + replies_from(EVOLVE_REPLIES, ROLES)["coder"]
    planner = replies_from(REFINE_REPLIES, ROLES)["planner"][:1]
    return e2e_run(folder, "evolve", 4, {"coder": coder, "planner": planner}, failures={2: 429, 4: 500})


def stored_calls(db: Path, run_id: str) -> list[Call]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT role, prompt, prompt_tokens, completion_tokens, error, created_at "
                            "FROM llm_calls WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
    return [Call(*row) for row in rows]


def node_times(db: Path, run_id: str) -> dict[int, float]:
    """When each node (by seq) was recorded: after its evaluation ended."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT seq, created_at FROM nodes WHERE run_id = ?", (run_id,)).fetchall())


def check_calls_and_retries(run: E2ERun) -> list[Call]:
    """Every answered request is one stored call with the tokens the server reported; each failed
    request was sent again, the same, and answered."""
    calls = stored_calls(run.db, run.run_id)
    answered = [e for e in run.log if e.status == 200]
    assert sorted(e.status for e in run.log if e.status != 200) == [429, 500]
    for failed in (e for e in run.log if e.status != 200):
        assert any(e.number > failed.number and e.role == failed.role and e.body == failed.body for e in answered)
    assert all(c.error is None for c in calls)
    assert all(c.role in ROLES and c.prompt_tokens > 0 and c.completion_tokens > 0 for c in calls)
    assert sorted((c.role, c.prompt_tokens, c.completion_tokens) for c in calls) == \
        sorted((e.role, e.prompt_tokens, e.completion_tokens) for e in answered)
    assert all(e.body["model"] == MODEL for e in run.log)
    return calls


def check_feedback(run: E2ERun, calls: list[Call]) -> int:
    """Each prompt made after an evaluation shows that evaluation's verdict: the latest node's line in
    the history (its status, and its time when it passed, or the start of its reason). The number of
    prompts checked."""
    with Store(run.db) as store:
        nodes = {n.seq: n for n in store.nodes(run.run_id)}
    recorded = node_times(run.db, run.run_id)
    checked = 0
    for call in calls:
        before = [seq for seq, at in recorded.items() if at < call.created_at]
        if not before:
            continue
        node = nodes[max(before)]
        verdict = node.verdict
        line = re.search(rf"^- #{node.seq} {node.intent}\b[^\n]*?: {verdict['status']}(.*)$", call.prompt, re.M)
        assert line, f"{call.role} prompt lacks the verdict on #{node.seq}:\n{call.prompt}"
        if verdict["status"] == "passed":
            shown = float(re.match(r", ([\d.e+-]+) ms", line.group(1)).group(1))
            assert shown == pytest.approx(verdict["time"]["median_ms"], rel=1e-3)
        else:
            assert line.group(1).lstrip(": ")[:20] in verdict["reason"]
        checked += 1
    return checked


def test_a_refine_run_through_the_openai_sdk_retries_and_feeds_back_each_verdict(refine: E2ERun) -> None:
    calls = check_calls_and_retries(refine)
    assert [c.role for c in calls] == ["coder", "debugger", "planner", "coder", "coder"]
    assert len(refine.log) == 7  # five calls, two of them sent twice
    with Store(refine.db) as store:
        record = store.get_run(refine.run_id)
        nodes = store.nodes(refine.run_id)
    assert record.status == "finished" and record.generator == "llm"
    assert record.config["llm"]["model"] == MODEL and record.config["llm"]["base_url"] == refine.url
    assert [n.verdict["status"] for n in nodes] == ["incorrect", "passed", "passed"]
    assert [n.metadata["roles"] for n in nodes] == [["coder"], ["debugger"], ["planner", "coder"]]
    assert check_feedback(refine, calls) == 4

    debugger, planner, coder, retry = (c.prompt for c in calls[1:])
    mismatch = nodes[0].verdict["details"]["mismatch"]
    assert "verdict on the failing kernel: **incorrect**" in debugger
    assert f"Wrong output: output {mismatch['output']}, worst element at index {mismatch['index']}" in debugger
    assert "verdict on the parent kernel: **passed**" in planner and "memory-bound" in planner
    assert "Apply this optimization: **vectorization**" in coder and "**passed**" in coder
    assert "## assistant\n\nI would vectorize the inner loop" in retry and "Your reply could not be used" in retry


def test_the_refine_runs_summary_and_report_show_what_each_role_spent(refine: E2ERun) -> None:
    calls = stored_calls(refine.db, refine.run_id)
    stdout = refine.result.stdout
    assert "spent per role" in stdout and "wall time" in stdout
    for role in ("planner", "coder", "debugger"):
        mine = [c for c in calls if c.role == role]
        tokens_in, tokens_out = sum(c.prompt_tokens for c in mine), sum(c.completion_tokens for c in mine)
        row = next(line for line in stdout.splitlines() if re.match(rf"\W*{role}\b", line))
        assert f"{tokens_in:,}" in row and f"{tokens_out:,}" in row
        assert re.search(rf"^\| {role} \| {len(mine)} \| {tokens_in} \| {tokens_out} \| - \|",
                         (refine.out / "report.md").read_text(), re.M)
    html = (refine.out / "report.html").read_text()
    assert '<section id="costs">' in html and "device time" in html


def test_an_evolve_run_through_the_openai_sdk(evolve: E2ERun) -> None:
    calls = check_calls_and_retries(evolve)
    with Store(evolve.db) as store:
        record = store.get_run(evolve.run_id)
        nodes = store.nodes(evolve.run_id)
    assert record.status == "finished" and record.strategy == "evolve" and len(nodes) == 4
    assert [n.intent for n in nodes[:3]] == ["draft"] * 3
    assert sum(n.verdict["status"] == "passed" for n in nodes) >= 3  # one draft has the wrong constant
    assert [c.role for c in calls][:3] == ["coder"] * 3
    assert check_feedback(evolve, calls) >= 1  # the fourth candidate's calls came after three verdicts
    assert "spent per role" in evolve.result.stdout


def test_llm_flags_fill_the_llm_table_over_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('generator = "llm"\n[llm]\nmodel = "file-model"\nbase_url = "http://file:1/v1"\n')
    config = load_config(path)
    flags = dict(generator=None, strategy=None, budget=None, max_tokens=None, max_cost=None, time_limit=None,
                 target_sol=None, plateau=None, seed=None, device=None, interpret=False)
    apply_flags(config, **flags, model="flag-model", base_url=None, provider=None)
    assert (config.llm.model, config.llm.base_url, config.llm.provider) == ("flag-model", "http://file:1/v1", None)

    config = load_config(path)
    apply_flags(config, **flags)  # a command without the LLM flags (bench) keeps the file's settings
    assert config.llm.model == "file-model"
    config.llm.model = None
    config.llm.provider = "anthropic"
    with pytest.raises(ConfigError, match="anthropic provider needs a model: pass --model"):
        apply_flags(config, **flags)


@pytest.mark.parametrize(("flags", "message"), [
    (["--generator", "llm"], "error: --generator llm: no LLM chosen: pass --model (and --base-url for your own "
                             "server) or set [llm] provider and model in the config"),
    (["--generator", "llm:coder", "--provider", "scripted"], "error: --generator llm: the scripted provider needs "
                                                             "a folder of replies: --provider scripted:FOLDER or "
                                                             '[llm] provider = "scripted:FOLDER"'),
    (["--model", MODEL], "error: --model chooses the LLM of --generator llm, but the generator is expert; "
                         "add --generator llm"),
])
def test_an_llm_generator_without_its_llm_is_one_line_before_anything_starts(
        flags: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "kernelwright", "optimize", str(TASK), *flags,
                             "--db", str(tmp_path / "runs.db")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == message
    assert not (tmp_path / "runs.db").exists()  # refused before the store was opened
