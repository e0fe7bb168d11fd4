"""The LLM roles: reply parsing (SEARCH/REPLACE, near misses, malformed replies), the evaluator's feedback
in every role's prompt (snapshots), the knowledge base, the `llm` generator under every strategy, a real
refine run on the CPU with scripted replies, and `kernelwright export`.

Prompt snapshots live in tests/fixtures/prompts/; after a deliberate change to a template, regenerate
them with `KERNELWRIGHT_UPDATE_PROMPTS=1 python -m pytest tests/test_llm_roles.py` and read the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kernelwright import environment
from kernelwright.candidate import Candidate, load_candidate
from kernelwright.config import AgentSettings, Config
from kernelwright.evaluate import rules as R
from kernelwright.export import reward
from kernelwright.generate import GeneratorError, get_generator
from kernelwright.generate.base import Context, Parent
from kernelwright.generate.llm import LLMGenerator
from kernelwright.llm import feedback, knowledge, roles
from kernelwright.llm.client import Client
from kernelwright.llm.provider import Message, Reply, Request
from kernelwright.llm.replies import EditMismatch, ReplyError, parse_reply
from kernelwright.llm.scripted import ScriptedProvider
from kernelwright.search import STRATEGIES
from kernelwright.store import Store
from kernelwright.task import load_task
from kernelwright.search import get_strategy
from kernelwright.search.run import Run
from kernelwright.store import RunRecord
from search_fakes import FakeEvaluations

ROOT = Path(__file__).parent
FIXTURES = ROOT / "fixtures"
PROMPTS = FIXTURES / "prompts"
VERDICTS = FIXTURES / "verdicts"
REPLIES = FIXTURES / "llm" / "gelu_refine"
GELU = load_task(FIXTURES / "tasks" / "gelu.py")
UPDATE = os.environ.get("KERNELWRIGHT_UPDATE_PROMPTS") == "1"

PARENT = '''import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        y = torch.empty_like(x)
        scale = 2.0
        run(x, y, scale)
        return y
'''


def verdict(name: str) -> dict:
    return json.loads((VERDICTS / f"{name}.json").read_text())


def fenced(source: str) -> str:
    return f"Here it is.\n\n```python\n{source}```\n"


# -- replies: whole files ----------------------------------------------------------------------

def test_the_last_full_model_new_block_that_parses_is_the_candidate() -> None:
    draft = "class ModelNew:\n    pass\n"
    final = "import torch\n\nclass ModelNew:\n    x = 1\n"
    text = f"Sketch:\n```python\n{draft}```\nA helper:\n```python\ndef helper():\n    pass\n```\n" + fenced(final)
    assert parse_reply(text).source == final and parse_reply(text).form == "code"
    broken = "class ModelNew(:\n    pass\n"
    assert parse_reply(fenced(final) + fenced(broken)).source == final  # a later block that does not parse loses
    assert parse_reply(fenced(broken)).source == broken  # alone, it goes to the evaluator, which names the line
    assert parse_reply("```\n" + final + "```").source == final  # an untagged fence is Python too


@pytest.mark.parametrize("text, message", [
    ("I would tile the loop and use shared memory.", "no fenced ```python code block"),
    ("```python\ndef helper():\n    pass\n```", "no code block that defines class ModelNew"),
    ("```python\nclass ModelNew:\n    pass\n", "never closes it"),
    ("```cpp\nextern \"C\" void f() {}\n```", "no fenced ```python code block"),
])
def test_a_reply_without_a_usable_file_is_a_reply_error_that_says_what_to_send(text: str, message: str) -> None:
    with pytest.raises(ReplyError, match=re.escape(message)) as caught:
        parse_reply(text)
    assert "complete candidate file" in str(caught.value)


# -- replies: SEARCH/REPLACE -------------------------------------------------------------------

def edit(search: str, replace_with: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace_with}\n>>>>>>> REPLACE\n"


def test_exact_edits_apply_in_order_inside_or_outside_a_fence() -> None:
    text = ("Two changes.\n```python\n" + edit("        scale = 2.0", "        scale = 3.0")
            + edit("        scale = 3.0\n        run(x, y, scale)", "        run(x, y, scale, x.numel())") + "```\n")
    parsed = parse_reply(text, PARENT)
    assert parsed.form == "edits" and parsed.notes == ()
    assert "        run(x, y, scale, x.numel())\n" in parsed.source and "scale = 2.0" not in parsed.source
    assert "scale = 3.0" not in parsed.source  # the second edit saw the first one's result


def test_near_misses_match_ignoring_trailing_spaces_blank_lines_and_a_consistent_indent_shift() -> None:
    # Quoted without indentation, with trailing spaces, and with a blank line the parent lacks.
    text = edit("y = torch.empty_like(x)   \n\nscale = 2.0", "y = torch.zeros_like(x)\nif True:\n    scale = 4.0")
    parsed = parse_reply(text, PARENT)
    assert parsed.notes == ("edit 1: matched ignoring whitespace (indentation +8)",)
    assert "        y = torch.zeros_like(x)\n        if True:\n            scale = 4.0\n" in parsed.source
    # Quoted with more indentation than the parent has: the replacement moves left by as much.
    deeper = edit("            def forward(self, x):\n                y = torch.empty_like(x)",
                  "            def forward(self, x, z):\n                y = torch.empty_like(z)")
    parsed = parse_reply(deeper, PARENT)
    assert "    def forward(self, x, z):\n        y = torch.empty_like(z)\n" in parsed.source
    assert parsed.notes == ("edit 1: matched ignoring whitespace (indentation -8)",)


def test_an_edit_that_matches_nowhere_asks_for_a_full_rewrite_and_names_the_closest_line() -> None:
    # Inconsistent indentation is not a near miss: the two lines would move by different amounts.
    inconsistent = edit("        y = torch.empty_like(x)\n    scale = 2.0", "pass")
    with pytest.raises(EditMismatch, match="A full rewrite is needed"):
        parse_reply(inconsistent, PARENT)
    with pytest.raises(EditMismatch, match=r"closest parent line .*'scale = 2\.0'"):
        parse_reply(edit("scale = 2.5", "scale = 3.0"), PARENT)


@pytest.mark.parametrize("text, message", [
    ("<<<<<<< SEARCH\nscale = 2.0\n>>>>>>> REPLACE\n", "expected '=======' after the SEARCH lines"),
    ("<<<<<<< SEARCH\nscale = 2.0\n=======\nscale = 3.0\n", "Edit 1 is not closed"),
    ("<<<<<<< SEARCH\n\n=======\nscale = 3.0\n>>>>>>> REPLACE\n", "empty SEARCH part"),
    (edit("scale = 2.0", "scale = 3.0") + "=======\n", "outside an edit block"),
    (edit("class ModelNew(nn.Module):", "class Other(nn.Module):"), "no longer defines class ModelNew"),
])
def test_malformed_edit_blocks_are_reply_errors(text: str, message: str) -> None:
    with pytest.raises(ReplyError, match=re.escape(message)):
        parse_reply(text, PARENT)


def test_edits_without_a_parent_and_repeated_search_text() -> None:
    with pytest.raises(ReplyError, match="no parent file to edit"):
        parse_reply(edit("a", "b"))
    twice = PARENT + "\n\nscale = 2.0\n"
    parsed = parse_reply(edit("scale = 2.0", "scale = 5.0"), twice)
    assert parsed.notes == ("edit 1: SEARCH text found 2 times; the first was replaced",)
    assert "        scale = 5.0\n" in parsed.source and parsed.source.endswith("scale = 2.0\n")
    loose_twice = PARENT + "\nif True:\n    y = torch.empty_like(x)\n    scale = 2.0\n"
    parsed = parse_reply(edit("y = torch.empty_like(x)  \nscale = 2.0", "pass"), loose_twice)
    assert parsed.notes == ("edit 1: matched ignoring whitespace (indentation +8); 2 places matched, "
                            "the first was replaced",)


# -- small replies: plans and findings ---------------------------------------------------------

def test_planner_and_judge_replies_in_json_or_labelled_lines() -> None:
    assert roles.parse_plan('Thinking...\n```json\n{"technique": "tiling", "reason": "reuse"}\n```') == \
        roles.Plan("tiling", "reuse")
    assert roles.parse_plan("**TECHNIQUE:** `split_k`\nREASON: K is long\nand M*N small") == \
        roles.Plan("split_k", "K is long and M*N small")
    assert roles.parse_finding('{"Bottleneck": "DRAM at 95%", "fix": "fuse the epilogue"}') == \
        roles.Finding("DRAM at 95%", "fuse the epilogue")
    assert roles.parse_finding("BOTTLENECK: long_scoreboard stalls\nFIX: vectorize the loads") == \
        roles.Finding("long_scoreboard stalls", "vectorize the loads")
    with pytest.raises(ReplyError, match="names no technique"):
        roles.parse_plan("I am not sure.")
    with pytest.raises(ReplyError, match="both a bottleneck and a fix"):
        roles.parse_finding('{"bottleneck": "memory"}')


# -- feedback: what the evaluator said, made short ---------------------------------------------

def test_compile_logs_keep_the_error_lines_and_drop_the_traceback_and_temp_paths() -> None:
    found = feedback.failure(verdict("compile_error"))
    assert found["log"].splitlines() == [
        "kernel.cpp: In function ‘void gelu(const float*, float*, long int)’:",
        "kernel.cpp:3:41: error: ‘undeclared’ was not declared in this scope",
        "    3 |     for (long i = 0; i < n; ++i) y[i] = undeclared(x[i]);",
        "      |                                         ^~~~~~~~~~",
    ]


def test_a_python_traceback_keeps_the_candidates_frames_and_the_exception() -> None:
    traceback = (
        'Traceback (most recent call last):\n'
        '  File "/work/src/kernelwright/evaluate/worker.py", line 53, in main\n'
        '    result = handler.handle(cmd)\n'
        '  File "/tmp/kernelwright-candidate-ab12/cand_0123.py", line 30, in forward\n'
        '    gelu_kernel[grid](x, y, n)\n'
        '  File "/usr/lib/python3/site-packages/triton/runtime/jit.py", line 345, in run\n'
        '    kernel = self.compile(src)\n'
        '             ^^^^^^^^^^^^^^^^^\n'
        'triton.compiler.errors.CompilationError: at 4:8:\n'
        '    x = tl.load(x_ptr + offs, mask=mask)\n'
        '        ^\n'
        "NameError('offs is not defined')\n")
    log = feedback.trim_log(feedback._stable(traceback))
    assert log.splitlines() == ["candidate.py, line 30, in forward", "    gelu_kernel[grid](x, y, n)",
                                "triton.compiler.errors.CompilationError: at 4:8:",
                                "    x = tl.load(x_ptr + offs, mask=mask)", "        ^",
                                "NameError('offs is not defined')"]


def test_history_keeps_the_newest_lines_within_its_token_budget() -> None:
    entries = [{"seq": i, "intent": "improve", "technique": "tiling", "status": "passed", "time_ms": 2.0 - i / 10,
                "speedup": 1.0 + i / 10} for i in range(10)]
    lines = feedback.history(entries, budget_tokens=60)
    assert lines[0].endswith("earlier attempts not shown)") and lines[-1].startswith("#9 improve (tiling): passed")
    assert sum(feedback.approx_tokens(line) for line in lines[1:]) <= 60
    assert feedback.history(entries, budget_tokens=10_000)[0] == "#0 improve (tiling): passed, 2 ms, 1.00x vs eager"


def test_the_rules_in_prompts_come_from_the_evaluators_tables() -> None:
    used = {rule for _, rule, _ in R.BANNED if rule} | {rule for rule, _ in R.BANNED_BUILTINS.values()}
    used |= {rule for rule, _ in R.DUNDER_METHOD_RULES.values()}
    assert used <= set(feedback.RULE_TEXT)  # a new rule in rules.py needs a line here
    cpu = feedback.rules("cpu")
    assert cpu["builders"] == ["kernelwright.backends.cpu.compile"] and "torch.empty_like" in cpu["torch_calls"]
    assert "threading" in cpu["banned"][R.THREADS_PROCESSES] and cpu["c_rules"]
    assert feedback.rules("triton")["c_rules"] == []


# -- knowledge ---------------------------------------------------------------------------------

def test_knowledge_notes_cover_the_techniques_and_patterns_and_fit_the_budget() -> None:
    names = {n.name for n in knowledge.notes()}
    assert {"coalescing", "tiling", "fusion", "vectorization", "tensor_cores", "persistent", "split_k",
            "online_softmax", "warp_reductions"} <= names
    assert {"pattern_pointwise", "pattern_softmax", "pattern_norm", "pattern_matmul"} <= names
    chosen = knowledge.select(("softmax",), technique="online_softmax", backend="triton", budget_tokens=100_000)
    titles = [title for title, _ in chosen]
    assert titles[:2] == ["Online softmax", "Pattern: softmax and log-softmax over rows"]
    online = dict(chosen)["Online softmax"]
    assert "tl.maximum" in online and "__shfl" not in online and "One thread per row" not in online  # Triton only
    by_bottleneck = knowledge.select((), bottleneck="long_scoreboard stalls, DRAM at 30%", backend="cuda")
    assert by_bottleneck and all(feedback.approx_tokens(t + x) < 1500 for t, x in by_bottleneck)
    assert knowledge.select(("matmul",), "tiling", budget_tokens=10) == []


def test_task_patterns_come_from_the_analysis_or_the_source() -> None:
    assert knowledge.task_patterns(load_task(FIXTURES / "tasks" / "softmax.py"))[0] == "softmax"
    assert knowledge.task_patterns(GELU) == ("pointwise",)


# -- prompts: snapshots through the generator --------------------------------------------------

FIXED_ENV = environment.Environment(device="cpu", device_name="Test CPU", driver=None, cuda=None,
                                    torch="2.13.0+cpu", triton="3.9.0", python="3.11.7", kernelwright="0.1.0")
HISTORY = (
    {"seq": 0, "id": "a", "status": "compile_error", "time_ms": None, "speedup": None, "intent": "draft",
     "technique": None, "reason": "load: CompileError: /usr/bin/g++ failed (exit 1)"},
    {"seq": 1, "id": "b", "status": "passed", "time_ms": 8.026, "speedup": 0.699, "intent": "repair",
     "technique": None, "reason": "correct"},
)


@pytest.fixture
def fixed_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompts that do not depend on this machine: a fixed environment for drafts, and measured ceilings
    in a cache of the test's own for every environment the fixtures name."""
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(environment, "current", lambda device=None: FIXED_ENV)
    monkeypatch.setattr(knowledge, "task_patterns", lambda task: ("pointwise",))
    ceilings = tmp_path / "ceilings"
    ceilings.mkdir()
    envs = [FIXED_ENV.to_dict()] + [verdict(n)["environment"] for n in ("passed_cpu", "passed_triton_profile")]
    for env in envs:
        known = {k: v for k, v in env.items() if k in FIXED_ENV.to_dict()}
        gpu = known["device"] == "cuda"
        flops = {"fp32": 5.2e13, "tf32": 4.0e14, "fp16": 6.9e14, "bf16": 6.9e14} if gpu else {"fp32": 7.6e10}
        (ceilings / f"{environment.Environment(**known).key()}.json").write_text(json.dumps(
            {"device_name": known["device_name"], "bandwidth": 3.02e12 if gpu else 1.49e10, "flops": flops,
             "measured_at": "2026-01-01"}))


def llm_generator(replies: list, store: Store | None = None, device: str = "cpu", **settings: object) \
        -> tuple[LLMGenerator, ScriptedProvider]:
    provider = ScriptedProvider(replies)
    client = Client(provider, cache="off", store=store)
    return LLMGenerator(client, "test-model", AgentSettings(**settings), device=device), provider


def check_snapshot(name: str, messages: tuple[Message, ...]) -> str:
    text = "\n\n".join(f"## {m.role}\n\n{m.content}" for m in messages) + "\n"
    path = PROMPTS / f"{name}.md"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path}; run with KERNELWRIGHT_UPDATE_PROMPTS=1 to write it"
    assert text == path.read_text(), f"{name}: the prompt changed; regenerate with KERNELWRIGHT_UPDATE_PROMPTS=1"
    return text


def parent(candidate: str | Path, verdict_name: str, **metadata: object) -> Parent:
    found = load_candidate(candidate)
    return Parent(Candidate(found.source, found.name, dict(metadata)), verdict(verdict_name))


def test_coder_draft_prompt(fixed_machine: None) -> None:
    gen, provider = llm_generator([fenced((FIXTURES / "runs" / "gelu_cpu" / "02_cpu_gelu.py").read_text())])
    (candidate,) = gen.propose(GELU, Context("draft", history=HISTORY))
    text = check_snapshot("coder_draft", provider.requests[0].messages)
    assert "Write a first kernel" in text and "measured memory bandwidth: 15 GB/s" in text
    assert "#0 draft: compile_error: load: CompileError" in text and "cpu.compile(SOURCE)" in text
    assert candidate.metadata["roles"] == ["coder"] and candidate.metadata["reply"]["form"] == "code"


def test_debugger_prompt_shows_the_mismatch(fixed_machine: None) -> None:
    failing = parent(FIXTURES / "runs" / "gelu_cpu" / "03_wrong_constant.py", "incorrect")
    fix = edit("for (long i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.5f));",
               "for (long i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));")
    gen, provider = llm_generator([fix])
    (candidate,) = gen.propose(GELU, Context("repair", (failing,), history=HISTORY))
    text = check_snapshot("debugger_incorrect", provider.requests[0].messages)
    assert ("Wrong output: output 0, worst element at index [8, 224]: expected -0.07782, got -0.197 "
            "(error 0.1192, allowed 7.265e-05); 64299 of 65536 elements wrong. Shapes: task shapes") in text
    assert "Repair attempt 1 of 3" in text and "batch_size=3, dim=1001" in text
    assert candidate.metadata["debug_attempt"] == 1 and "0.7071067811865476f" in candidate.source


def test_debugger_prompt_shows_the_trimmed_compile_log(fixed_machine: None) -> None:
    failing = parent(FIXTURES / "runs" / "gelu_cpu" / "01_compile_error.py", "compile_error", debug_attempt=1)
    gen, provider = llm_generator([edit("undeclared(x[i])", "x[i]")])
    (candidate,) = gen.propose(GELU, Context("repair", (failing,)))
    text = check_snapshot("debugger_compile_error", provider.requests[0].messages)
    assert "kernel.cpp:3:41: error: ‘undeclared’ was not declared in this scope" in text
    assert "Traceback" not in text and "/tmp/" not in text and "Repair attempt 2 of 3" in text
    assert candidate.metadata["debug_attempt"] == 2


def test_judge_planner_and_coder_prompts_read_the_profile_and_roofline(fixed_machine: None) -> None:
    fast = parent(FIXTURES / "candidates" / "triton_gelu.py", "passed_triton_profile")
    replies = ['{"bottleneck": "long_scoreboard stalls (11.8 cycles) at 59% DRAM", "fix": "more bytes per thread"}',
               "TECHNIQUE: vectorization\nREASON: loads wait on DRAM; wider loads keep more bytes in flight",
               edit("    gelu_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)",
                    "    gelu_kernel[(triton.cdiv(x.numel(), 4096),)](x, y, x.numel(), BLOCK=4096)")]
    gen, provider = llm_generator(replies, device="cuda", pipeline="planner+coder+debugger+judge")
    (candidate,) = gen.propose(GELU, Context("improve", (fast,), history=HISTORY))
    judge, planner, coder = (r.messages for r in provider.requests)
    judge_text = check_snapshot("judge", judge)
    planner_text = check_snapshot("planner", planner)
    coder_text = check_snapshot("coder_improve", coder)
    assert ("gelu_kernel: 10.88 us, compute 21%, memory 63%, DRAM 59%, occupancy 42%, top stalls "
            "(cycles per instruction): long_scoreboard 11.8, lg_throttle 3.2, wait 1.1") in judge_text
    assert "measured memory bandwidth: 3020 GB/s" in judge_text and "bf16 690.0 TFLOP/s" in judge_text
    assert "Bottleneck: long_scoreboard stalls (11.8 cycles) at 59% DRAM" in planner_text
    assert "the candidate runs at 83.7% of it" in planner_text and "1.02x vs eager" in planner_text
    assert "Apply this optimization: **vectorization**. Why: loads wait on DRAM" in coder_text
    assert "### Vectorized loads and stores" in coder_text and "reinterpret_cast" not in coder_text  # Triton's part
    assert "@triton.jit" in coder_text and "cpu.compile" not in coder_text
    assert "BLOCK=4096" in candidate.source
    assert candidate.metadata["roles"] == ["judge", "planner", "coder"]
    assert candidate.metadata["plan"]["technique"] == "vectorization"
    assert candidate.metadata["finding"]["fix"] == "more bytes per thread"
    assert candidate.name == "llm-000-improve-vectorization"


# -- the generator -----------------------------------------------------------------------------

def test_a_malformed_reply_is_fed_back_once_and_counted(fixed_machine: None) -> None:
    good = parent(FIXTURES / "runs" / "gelu_cpu" / "02_cpu_gelu.py", "passed_cpu")
    store = Store(":memory:")
    gen, provider = llm_generator(["TECHNIQUE: fusion", "I'd fuse it.", edit("x = x.contiguous()", "x = x.view(-1)")],
                                  store=store)
    (candidate,) = gen.propose(GELU, Context("improve", (good,), run_id="r1"))
    retry = provider.requests[2].messages
    assert [m.role for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2].content == "I'd fuse it." and retry[3].content.startswith("Your reply could not be used: The reply")
    meta = candidate.metadata
    assert meta["reply"]["malformed"] == 1 and [e["role"] for e in meta["transcript"]] == ["planner", "coder", "coder"]
    assert meta["transcript"][1]["error"] and meta["transcript"][2]["error"] is None
    assert [u["role"] for u in meta["llm"]] == ["planner", "coder", "coder"]
    assert set(meta["llm"][0]) >= {"input_tokens", "output_tokens", "cost_usd", "seconds", "model"}
    assert [c.role for c in store.llm_calls("r1")] == ["planner", "coder", "coder"]  # what budgets count

    gen, _ = llm_generator(["no code", "still no code"])
    with pytest.raises(GeneratorError, match="ReplyError: The reply has no fenced"):
        gen.propose(GELU, Context("draft"))


def test_the_coder_rewrites_after_the_debuggers_attempts_and_advice_that_cannot_be_read_is_skipped(
        fixed_machine: None) -> None:
    failing = parent(FIXTURES / "runs" / "gelu_cpu" / "03_wrong_constant.py", "incorrect", debug_attempt=3)
    source = (FIXTURES / "runs" / "gelu_cpu" / "02_cpu_gelu.py").read_text()
    gen, provider = llm_generator([fenced(source)])
    (candidate,) = gen.propose(GELU, Context("repair", (failing,)))
    assert provider.requests[0].messages[0].content.endswith("Your role: the coder. You write a complete, correct "
                                                              "and fast `ModelNew`.")
    assert "start afresh" in provider.requests[0].messages[1].content
    assert candidate.metadata["rewrite"] and "debug_attempt" not in candidate.metadata

    good = parent(FIXTURES / "runs" / "gelu_cpu" / "02_cpu_gelu.py", "passed_cpu")
    gen, provider = llm_generator(["hmm", "not sure", fenced(source)])
    (candidate,) = gen.propose(GELU, Context("improve", (good,)))
    assert candidate.metadata["roles"] == ["coder"] and "plan" not in candidate.metadata
    assert candidate.metadata["reply"]["malformed"] == 2

    gen, provider = llm_generator([fenced(source)], pipeline="coder")
    gen.propose(GELU, Context("improve", (good,), technique="tiling"))
    (request,) = provider.requests
    assert "Apply this optimization: **tiling**. Why: chosen by the search strategy" in request.messages[1].content


def test_crossover_shows_both_parents_and_wants_a_whole_file(fixed_machine: None) -> None:
    a = parent(FIXTURES / "runs" / "gelu_cpu" / "02_cpu_gelu.py", "passed_cpu")
    b = parent(FIXTURES / "candidates" / "cpu_gelu.py", "passed_cpu")
    gen, provider = llm_generator([edit("a", "b"), fenced(a.candidate.source)])
    (candidate,) = gen.propose(GELU, Context("crossover", (a, b)))
    prompt = provider.requests[0].messages[1].content
    assert "## Parent A" in prompt and "## Parent B" in prompt and "SEARCH/REPLACE" not in prompt
    assert "no parent file to edit" in provider.requests[1].messages[3].content
    assert candidate.source == a.candidate.source


def test_the_factory_reads_the_config_and_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="llm generator: no LLM chosen: pass --model"):
        get_generator("llm", config=Config())
    config = Config()
    config.llm.provider = f"scripted:{REPLIES}"
    config.eval.device = "cpu"
    with pytest.raises(GeneratorError, match="llm pipeline 'planner\\+debugger'.*coder is needed"):
        get_generator("llm:planner+debugger", config=config)
    config.agents = replace(config.agents, backend="fortran")
    with pytest.raises(GeneratorError, match="backend must be one of"):
        get_generator("llm", config=config)
    config.agents = AgentSettings()
    config.eval.profile = True
    gen = get_generator("llm", config=config, store=Store(":memory:"))
    assert gen.roles == ("planner", "coder", "debugger", "judge") and gen.backend == "cpu"
    assert get_generator("llm:coder", config=config).roles == ("coder",)


class RoleResponder:
    """A provider that answers by role with fake candidates (search_fakes' FAKE line), each faster."""

    name = "responder"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def complete(self, request: Request) -> Reply:
        role = re.search(r"Your role: the (\w+)", request.messages[0].content).group(1)
        self.calls.append(role)
        if role == "planner":
            text = '{"technique": "tiling", "reason": "reuse"}'
        else:
            n = len(self.calls)
            fake = {"status": "passed", "time_ms": 1.0 / n}
            text = fenced(f'"""{n}"""\nFAKE = {fake!r}\n\nclass ModelNew:\n    pass\n')
        return Reply(text, input_tokens=100, output_tokens=50, cost_usd=0.001, model=request.model)


def drive(strategy: str, generator: LLMGenerator, store: Store, budget: int) -> Run:
    """A run of `strategy` on the fake evaluator (search_fakes), one generator call at a time."""
    config = Config(generator="llm", strategy=strategy, concurrency=1)  # the responder answers in call order
    config.budget.candidates = budget
    config.stop = replace(config.stop, target_sol=None)
    record = RunRecord(id="run1", key=config.run_key(GELU.id), task_id=GELU.id, task_name=GELU.name,
                       task_path=str(GELU.path), strategy=strategy, generator="llm", seed=0, config=config.to_dict())
    store.create_run(record)
    run = Run(record, GELU, generator, FakeEvaluations(), store, config)
    try:
        module = get_strategy(strategy)
        module.search(run, module.Params())
    finally:
        run.close()
    return run


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_runs_the_llm_generator(strategy: str, fixed_machine: None) -> None:
    responder = RoleResponder()
    store = Store(":memory:")
    gen = LLMGenerator(Client(responder, cache="off", store=store), "m", device="cpu")
    run = drive(strategy, gen, store, budget=6)
    assert len(run.nodes) >= 4 and all(n.passed for n in run.nodes)
    intents = {n.intent for n in run.nodes}
    assert intents <= {"draft", "improve", "mutate", "crossover", "repair"}
    assert store.usage(run.id).tokens == 150 * len(responder.calls)
    if strategy in ("refine", "tree"):
        assert "planner" in responder.calls


# -- a real refine run on the CPU, and export --------------------------------------------------

@pytest.fixture(scope="module")
def refine_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("llm_refine")
    config = folder / "llm.toml"
    config.write_text((FIXTURES / "runs" / "cpu_quick.toml").read_text()
                      + f'\n[llm]\nprovider = "scripted:{REPLIES}"\ncache = "off"\n'
                      + '\n[agents]\npipeline = "planner+coder+debugger"\n')
    db = folder / "runs.db"
    result = subprocess.run([sys.executable, "-m", "kernelwright", "optimize", str(FIXTURES / "tasks" / "gelu.py"),
                             "-g", "llm", "--config", str(config), "--budget", "4", "--db", str(db),
                             "--out", str(folder / "out")], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "200", "KERNELWRIGHT_CACHE_DIR": str(folder / "cache")})
    assert result.returncode == 0, result.stderr + result.stdout
    with Store(db) as store:
        run_id = store.list_runs()[0].id
    yield db, run_id


def test_a_refine_run_with_scripted_replies_feeds_each_verdict_to_the_next_role(refine_run: tuple[Path, str]) -> None:
    db, run_id = refine_run
    with Store(db) as store:
        nodes = store.nodes(run_id)
        calls = store.llm_calls(run_id)
    assert [n.verdict["status"] for n in nodes] == ["incorrect", "passed", "passed", "compile_error"]
    assert [n.metadata["roles"] for n in nodes] == [["coder"], ["debugger"], ["planner", "coder"], ["planner", "coder"]]
    assert [c.role for c in calls] == ["coder", "debugger", "planner", "coder", "coder", "planner", "coder"]
    assert nodes[1].metadata["reply"]["notes"] == ["edit 1: matched ignoring whitespace (indentation +8)"]
    assert nodes[2].metadata["reply"]["malformed"] == 1 and nodes[2].name == "llm-002-improve-vectorization"
    # Each role's prompt carries the evaluation before it.
    debugger_prompt = nodes[1].metadata["transcript"][0]["messages"][1]["content"]
    assert "Wrong output: output 0, worst element at index [8, 224]" in debugger_prompt
    planner_prompt = nodes[2].metadata["transcript"][0]["messages"][1]["content"]
    assert "**passed** (correct;" in planner_prompt and "memory-bound, fp32 arithmetic" in planner_prompt
    assert "#0 draft: incorrect" in planner_prompt and "#1 repair: passed" in planner_prompt
    coder_prompt = nodes[3].metadata["transcript"][1]["messages"][1]["content"]
    assert "Apply this optimization: **fusion**" in coder_prompt
    assert "#2 improve (vectorization): passed" in coder_prompt  # the planner's technique, in the history


def test_export_writes_rl_and_sft_jsonl(refine_run: tuple[Path, str], tmp_path: Path) -> None:
    db, run_id = refine_run
    out = tmp_path / "rl.jsonl"
    result = subprocess.run([sys.executable, "-m", "kernelwright", "export", run_id[:5], "--format", "rl",
                             "--db", str(db), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rl = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in rl] == [0, 1, 2, 3] and "4 records written" in result.stderr
    assert [r["role"] for r in rl] == ["coder", "debugger", "coder", "coder"]
    assert [r["reward"] for r in rl][::3] == [0.0, 0.0]
    assert all(r["reward"] == round(r["verdict"]["speedup"]["eager"], 4) > 0 for r in rl[1:3])
    assert rl[2]["prompt"][-1]["content"].startswith("Your reply could not be used")  # the retry's conversation
    assert rl[1]["reply"].startswith("The cause: the erf argument") and rl[0]["verdict"]["status"] == "incorrect"
    result = subprocess.run([sys.executable, "-m", "kernelwright", "export", run_id, "--format", "sft",
                             "--db", str(db)], capture_output=True, text=True, timeout=120)
    sft = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in sft] == [1, 2] and sft[0]["messages"][-1] == {"role": "assistant",
                                                                           "content": rl[1]["reply"]}
    result = subprocess.run([sys.executable, "-m", "kernelwright", "export", run_id, "--format", "csv",
                             "--db", str(db)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--format must be one of sft, rl" in result.stderr


def test_reward_is_zero_for_failures_and_the_speedup_over_the_faster_baseline() -> None:
    assert reward(verdict("incorrect")) == 0.0 and reward(None) == 0.0
    assert reward(verdict("passed_triton_profile")) == round(0.013034 / 0.012905, 4)
    assert reward({"status": "passed", "speedup": {}}) is None


def test_hardware_facts_name_the_processors_and_memory_the_evaluator_recorded() -> None:
    from kernelwright.llm.feedback import hardware

    verdict = {"environment": {**FIXED_ENV.to_dict(), "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3",
                               "processors": 132, "memory_gib": 79.1}}
    assert "132 streaming multiprocessors, 79.1 GiB memory" in hardware(verdict, "cuda")
    assert not any("multiprocessors" in line for line in hardware({"environment": FIXED_ENV.to_dict()}, "cpu"))
