"""An LLM refine run against a scripted OpenAI-compatible server on loopback, written out as a transcript.

    python benchmarks/llm_loopback_demo.py [--out docs/llm-transcript.md] [--work DIR]

Starts the test suite's chat server (tests/llm_server.py) with the replies of
tests/fixtures/llm/gelu_refine (request 2 answered 429, request 5 answered 500),
runs `kernelwright optimize tests/fixtures/tasks/gelu.py --generator llm --model
test-model --base-url URL --strategy refine --budget 3` on the CPU, then reads the
store and writes every LLM call in order (role, tokens, the evaluator's feedback
that its prompt carries, the whole prompt, the reply), the candidates and what
each role spent, as Markdown.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from kernelwright.report.costs import format_usd, run_costs
from kernelwright.report.run import code_fence, format_duration
from kernelwright.store import Store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback server lives with the tests that use it

from llm_server import ChatServer, replies_from  # noqa: E402

TASK = "tests/fixtures/tasks/gelu.py"
CONFIG = "tests/fixtures/runs/cpu_quick.toml"
REPLIES = ROOT / "tests" / "fixtures" / "llm" / "gelu_refine"
FAILURES = {2: 429, 5: 500}
MODEL = "test-model"
# Prompt lines that carry feedback: a parent's verdict, its failure or timing and roofline, the history,
# and the reason a reply could not be used.
FEEDBACK = re.compile(r"^(The evaluator's verdict|Wrong output|Time:|Static rule|Compiler / runtime|"
                      r"The task needs|- #\d+ |Your reply could not be used)")


def command(url: str, work: Path) -> list[str]:
    return ["kernelwright", "optimize", TASK, "--generator", "llm", "--model", MODEL, "--base-url", url,
            "--strategy", "refine", "--budget", "3", "--config", CONFIG, "--db", str(work / "runs.db"),
            "--out", str(work / "out")]


def run(work: Path) -> ChatServer:
    """The optimize command, run against a fresh server (returned, with its log); the store is in `work`."""
    server = ChatServer(replies_from(REPLIES, ("planner", "coder", "debugger", "judge")), FAILURES)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    with server:
        result = subprocess.run([sys.executable, "-m", *command(server.url, work)], cwd=ROOT, env=env,
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"optimize failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return server


def transcript(db: Path, server: ChatServer) -> str:
    with Store(db) as store:
        record = store.list_runs()[0]
        nodes = store.nodes(record.id)
        calls = store.llm_calls(record.id)
        costs = run_costs(store, record.id)
    shown = " ".join(command("http://127.0.0.1:PORT/v1", Path("WORK")))
    lines = [
        "# An LLM refine run, call by call",
        "",
        "Made by `python benchmarks/llm_loopback_demo.py`: a scripted OpenAI-compatible server on loopback",
        "(`tests/llm_server.py`, replies from `tests/fixtures/llm/gelu_refine/`) answered",
        "",
        f"    {shown}",
        "",
        "through the `openai` SDK, on the CPU. The server answered request "
        + " and request ".join(f"{n} with HTTP {s}" for n, s in sorted(FAILURES.items()))
        + f"; the client retried each ({len(server.log)} requests for {len(calls)} calls). Every prompt after the "
          "first carries the evaluator's verdict on the candidate before it (and a retry, why the reply before "
          "could not be used): the lines quoted above each prompt are taken from it. Prompts and replies are "
          "as the store's `llm_calls` table holds them.",
        "",
        "## Candidates",
        "",
        "| # | name | roles | status | time (ms) | reason |",
        "|---:|---|---|---|---:|---|",
    ]
    for node in nodes:
        verdict = node.verdict or {}
        time_ms = (verdict.get("time") or {}).get("median_ms")
        reason = " ".join(str(verdict.get("reason", "")).split())[:100].replace("|", "\\|")
        lines.append(f"| {node.seq} | {node.name} | {', '.join(node.metadata.get('roles', []))} | "
                     f"{verdict.get('status', '-')} | {f'{time_ms:.4g}' if time_ms else '-'} | {reason} |")
    lines += ["", "## What each role spent", "",
              f"Wall time {format_duration(costs.wall_s)}. Tokens as the server reported them; the test model has no "
              "price, so no dollars.", "",
              "| role | LLM calls | tokens in | tokens out | cost | LLM time | candidates | device time |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cost in costs.roles + [costs.total]:
        lines.append(f"| {cost.role} | {cost.calls} | {cost.input_tokens} | {cost.output_tokens} | {format_usd(cost)} "
                     f"| {format_duration(cost.llm_s)} | {cost.candidates} | {format_duration(cost.device_s)} |")
    for number, call in enumerate(calls, 1):
        feedback = [line for line in call.prompt.splitlines() if FEEDBACK.match(line)]
        prompt_fence, reply_fence = code_fence(call.prompt), code_fence(call.reply)
        lines += ["", f"## Call {number}: {call.role}", "",
                  f"{call.prompt_tokens} tokens in, {call.completion_tokens} out, {call.latency_s:.2f} s.", ""]
        if feedback:
            lines += ["Feedback in this prompt (its lines, quoted):", ""] + [f"> {line}" for line in feedback] + [""]
        else:
            lines += ["The first call: nothing has been evaluated yet.", ""]
        lines += ["<details><summary>The whole prompt</summary>", "", f"{prompt_fence}markdown", call.prompt,
                  prompt_fence, "", "</details>", "", "The reply:", "", f"{reply_fence}markdown",
                  call.reply.rstrip("\n"), reply_fence]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "llm-transcript.md")
    parser.add_argument("--work", type=Path, help="folder for the store and the run's files (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kernelwright-demo-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        server = run(work)
        args.out.write_text(transcript(work / "runs.db", server))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
