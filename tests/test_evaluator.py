"""The evaluator on the CPU: every fixture gets its verdict, the parent survives its workers, the JSON is a contract.

Workers are spawned processes (2-3 s each to start), so one evaluator serves
the whole verdict table; only cases that need other options get their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from private_cache import BANDWIDTH, FP32_FLOPS, seed_ceilings

from kernelwright.candidate import Candidate, load_candidate
from kernelwright.evaluate.evaluator import Evaluator
from kernelwright.evaluate.options import EvalOptions
from kernelwright.evaluate.verdict import Status
from kernelwright.paths import CACHE_ENV
from kernelwright.task import TaskError, load_task

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TASKS = FIXTURES / "tasks"
CANDIDATES = FIXTURES / "candidates"

FAST = dict(baselines=("eager",), timing_budget_s=0.2, min_runs=3, max_runs=20,
            step_timeout=20, compile_timeout=60, interpret_triton=True)


def task(name: str = "gelu"):
    return load_task(TASKS / f"{name}.py")


def candidate(name: str) -> Candidate:
    return load_candidate(CANDIDATES / f"{name}.py")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """A private cache for the module, set in os.environ before any worker is spawned (workers inherit it)."""
    root = tmp_path_factory.mktemp("kernelwright-cache")
    seed_ceilings(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="module")
def evaluator(cache_root):
    with Evaluator(EvalOptions(**FAST)) as ev:
        yield ev


@pytest.fixture(scope="module")
def passed(evaluator):
    """One passing verdict (the CPU C++ GELU), shared by the tests that look inside it."""
    return evaluator.evaluate(task("gelu"), candidate("cpu_gelu"))


# Grouped by task, CPU before Triton, so the reference worker is rebuilt only on a change of task.
VERDICTS = [
    # (candidate, task, status, substring of the reason or None)
    ("bf16_downgrade", "gelu", Status.INCORRECT, "outside tolerance"),
    ("cached_output", "gelu", Status.STATIC_REJECTED, "[global-state]"),
    ("compile_error", "gelu", Status.COMPILE_ERROR, "g++ failed"),
    ("constant_output", "gelu", Status.INCORRECT, "outside tolerance"),
    ("empty_output", "gelu", Status.INCORRECT, "has shape [0]"),
    ("only_pytorch_allowed", "gelu", Status.STATIC_REJECTED, "[torch-compute]"),
    ("out_of_memory", "gelu", Status.RUNTIME_ERROR, "out of memory"),
    ("raises", "gelu", Status.RUNTIME_ERROR, "TypeError"),
    ("side_stream", "gelu", Status.STATIC_REJECTED, "[streams-events]"),
    ("subclass_reference", "gelu", Status.STATIC_REJECTED, "[reference-model]"),
    ("timer_patch", "gelu", Status.STATIC_REJECTED, "[timing-patch]"),
    ("torch_fallback", "gelu", Status.STATIC_REJECTED, "[torch-compute]"),
    ("try_except_fallback", "gelu", Status.STATIC_REJECTED, "[try-except]"),
    ("unwritten_output", "gelu", Status.INCORRECT, "outside tolerance"),
    ("zero_inputs", "gelu", Status.INCORRECT, "modified input 0"),
    ("triton_bf16", "gelu", Status.INCORRECT, "outside tolerance"),
    ("triton_cached", "gelu", Status.STATIC_REJECTED, "[global-state]"),
    ("triton_constant", "gelu", Status.INCORRECT, "outside tolerance"),
    ("triton_empty", "gelu", Status.INCORRECT, "has shape [0]"),
    ("triton_unwritten", "gelu", Status.INCORRECT, "outside tolerance"),
    ("triton_zero_inputs", "gelu", Status.INCORRECT, "modified input 0"),
    ("cpu_scale_bias", "scale_bias", Status.PASSED, None),
    ("triton_softmax", "softmax", Status.PASSED, None),
]


@pytest.mark.parametrize("name, task_name, status, says", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_verdict(evaluator, name, task_name, status, says):
    verdict = evaluator.evaluate(task(task_name), candidate(name))
    assert verdict.status is status, verdict.reason
    if says is not None:
        assert says in verdict.reason
    assert verdict.task["name"] == task_name
    assert verdict.candidate["id"] == candidate(name).id
    if status is not Status.PASSED:
        assert verdict.time is None  # nothing is timed for a candidate that did not pass
    if status is Status.INCORRECT:
        # Every fixture here fails its very first trial, which the reason names so it can be replayed.
        assert verdict.details["trial"] == "task shapes, seed 0, inputs from task's get_inputs()"
        assert verdict.reason.startswith(verdict.details["trial"] + ", first call: ")
    if says == "outside tolerance":
        mismatch = verdict.details["mismatch"]
        assert mismatch["output"] == 0 and len(mismatch["index"]) == 2
        assert {"expected", "got", "allowed"} <= set(mismatch)
    if status is Status.STATIC_REJECTED:
        assert verdict.details["violations"] and "compile" not in verdict.seconds  # nothing ran
    if status in (Status.RUNTIME_ERROR, Status.COMPILE_ERROR):
        assert verdict.details["traceback"]


def test_correct_cpu_kernel_passes(passed):
    assert passed.status is Status.PASSED, passed.reason
    assert passed.reason.startswith("correct; ")
    assert passed.environment["device"] == "cpu"
    assert passed.candidate["backends"] == ["cpu"]
    assert passed.custom_kernel_share > 0
    assert 3 <= passed.time.runs <= 20  # min_runs and max_runs respected


def test_passed_verdict_json_has_the_contract_keys(passed):
    data = json.loads(passed.to_json())
    assert data["status"] == "passed"
    assert isinstance(data["reason"], str) and data["reason"]
    assert data["time"]["median_ms"] > 0
    assert data["time"]["iqr_ms"] >= 0
    assert data["baselines"]["eager"]["median_ms"] > 0
    assert data["speedup"]["eager"] == pytest.approx(
        data["baselines"]["eager"]["median_ms"] / data["time"]["median_ms"])
    light = data["speed_of_light"]
    assert light["unit"] == "fp32" and light["bound"] == "memory"
    assert light["floor_ms"] == pytest.approx(1e3 * max(light["bytes"] / BANDWIDTH, light["flops"] / FP32_FLOPS))
    assert light["fraction"] == pytest.approx(light["floor_ms"] / data["time"]["median_ms"])
    assert light["bytes"] == 2 * 64 * 1024 * 4  # gelu.py: read x, write y, float32
    environment = data["environment"]
    assert environment["device"] == "cpu"
    assert environment["torch"] and "triton" in environment
    assert data["correctness"]["trials"] >= 10
    assert set(passed.to_dict()) >= {"status", "reason", "time", "baselines", "speedup", "speed_of_light",
                                     "environment", "correctness"}


def test_correctness_counts_every_seed_and_distribution(passed):
    correctness = passed.correctness
    # gelu.py: one shape variant besides the task's shapes, and the default extra distribution.
    assert correctness["variants"] == 2
    assert correctness["distributions"] == 2
    # 5 seeds x 2 distributions on the task's shapes, 1 seed x 2 distributions on the variant.
    assert correctness["trials"] == 5 * 2 + 1 * 2
    assert correctness["tolerance"]["precision"] == "fp32"
    assert 0 <= correctness["max_rel_error"] < 1e-4


def test_triton_gelu_passes_in_the_interpreter_and_is_flagged(evaluator):
    verdict = evaluator.evaluate(task("gelu"), candidate("triton_gelu"))
    assert verdict.status is Status.PASSED, verdict.reason
    assert verdict.candidate["backends"] == ["triton"]
    assert any("interpreter" in flag for flag in verdict.flags), verdict.flags


def test_static_rejection_names_rule_and_line(evaluator):
    verdict = evaluator.evaluate(task("gelu"), candidate("timer_patch"))
    assert verdict.status is Status.STATIC_REJECTED
    violations = verdict.details["violations"]
    assert violations, verdict.details
    assert all(v["rule"] == "timing-patch" and v["message"] for v in violations), violations
    source_lines = candidate("timer_patch").source.splitlines()
    flagged = {source_lines[v["line"] - 1] for v in violations}
    assert "import time" in flagged  # the clock's module may not be imported at all
    assert "time.perf_counter = lambda: 0.0" in flagged  # and the patch itself is named by its line
    assert verdict.reason.startswith("line 2 [timing-patch]") and "(+1 more)" in verdict.reason
    assert verdict.seconds.keys() == {"static"}  # nothing ran after the static check


def test_parent_survives_a_segfault_and_recycles_the_worker(evaluator):
    crashed = evaluator.evaluate(task("gelu"), candidate("segfault"))
    assert crashed.status is Status.RUNTIME_ERROR, crashed.reason
    assert "SIGSEGV" in crashed.reason
    after = evaluator.evaluate(task("gelu"), candidate("cpu_gelu"))
    assert after.status is Status.PASSED, after.reason


def precompile(name: str) -> None:
    """Build a fixture's C++ into the shared cache here, so its worker's import is a cache hit.

    The fixture is read with `ast`, never imported (importing it would run candidate code here)."""
    import ast

    from kernelwright.backends import cpu

    tree = ast.parse(candidate(name).source)
    # The module's string constants, for a source passed by name (cpu.compile(SOURCE)).
    strings = {target.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
               and isinstance(node.value, ast.Constant) for target in node.targets if isinstance(target, ast.Name)}
    [source] = [strings[arg.id] if isinstance(arg, ast.Name) else ast.literal_eval(arg) for node in ast.walk(tree)
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "cpu.compile" for arg in node.args[:1]]
    cpu.compile(source)


def test_a_hang_times_out_and_the_next_candidate_still_passes(cache_root):
    # Both fixtures' C++ built beforehand: the candidates' loads run under the short compile_timeout, and
    # g++ on a busy 2-core machine took more than its 5 s (CI, 2026-12-01).
    precompile("hang")
    precompile("cpu_gelu")
    # The first call of a candidate runs under compile_timeout, so both are short.
    with Evaluator(EvalOptions(**dict(FAST, step_timeout=5, compile_timeout=5))) as ev:
        # A pass first, so the hang meets a started reference and a warm spare worker,
        # and its 5 s are spent in the kernel rather than in starting processes or g++.
        before = ev.evaluate(task("gelu"), candidate("cpu_gelu"))
        assert before.status is Status.PASSED, before.reason
        hung = ev.evaluate(task("gelu"), candidate("hang"))
        assert hung.status is Status.TIMEOUT, hung.reason
        assert hung.reason == "run: 'run' took longer than 5 s"
        after = ev.evaluate(task("gelu"), candidate("cpu_gelu"))
        assert after.status is Status.PASSED, after.reason


def test_cached_baselines_stand_until_the_machine_s_speed_moves(cache_root):
    """Baselines are cached on disk. On a hit eager is timed again: within baseline_drift of the cached time
    the cache stands, beyond it every baseline is measured anew (a shared machine's speed drifts between
    sessions, and stale baselines would judge a fresh candidate wrongly)."""
    folder = cache_root / "baselines"
    earlier = set(folder.glob("*.json"))

    def eager_ms(drift: float) -> float:
        # max_runs 21: a cache file of this test's own (the timing options are in its key, the drift is not).
        with Evaluator(EvalOptions(**dict(FAST, max_runs=21, baseline_drift=drift))) as ev:
            verdict = ev.evaluate(task("gelu"), candidate("cpu_gelu"))
        assert verdict.status is Status.PASSED, verdict.reason
        return verdict.to_dict()["baselines"]["eager"]["median_ms"]

    def cache(ms: float) -> None:
        path.write_text(json.dumps({"eager": {"median_ms": ms, "iqr_ms": 0.0, "runs": 10}}))

    # Ratios far beyond timing noise: a loaded CI machine timed this eager 40x slower than a moment before.
    measured = eager_ms(10.0)
    [path] = set(folder.glob("*.json")) - earlier
    cache(measured * 2)
    assert eager_ms(1e9) == measured * 2  # within the drift: the cached time stands
    cache(measured * 1e6)
    again = eager_ms(10.0)
    assert again < measured * 1e4  # beyond it: measured anew, and the cache rewritten
    assert json.loads(path.read_text())["eager"]["median_ms"] == again
    cache(measured / 1e6)
    assert eager_ms(10.0) > measured / 1e4  # beyond it the other way too


def test_an_output_flood_is_a_runtime_error_at_the_limit(cache_root):
    with Evaluator(EvalOptions(**dict(FAST, output_limit_bytes=1024 * 1024))) as ev:
        verdict = ev.evaluate(task("gelu"), candidate("flood"))
    assert verdict.status is Status.RUNTIME_ERROR, verdict.reason
    assert "more than 1 MiB of output" in verdict.reason
    assert "dull kernel" in verdict.details["log"]


def test_an_allowed_op_doing_all_the_work_is_rejected_by_the_launch_check(cache_root):
    with Evaluator(EvalOptions(**dict(FAST, allow_ops=("gelu",)))) as ev:
        verdict = ev.evaluate(task("gelu"), candidate("only_pytorch_allowed"))
    assert verdict.status is Status.REJECTED, verdict.reason
    assert "no custom kernel ran" in verdict.reason
    assert verdict.correctness["trials"] > 0  # it was correct: only the launch check caught it


def test_triton_without_the_interpreter_is_unsupported_here(cache_root):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the GPU-less verdict")
    with Evaluator(EvalOptions(**dict(FAST, interpret_triton=False))) as ev:
        verdict = ev.evaluate(task("gelu"), candidate("triton_gelu"))
    assert verdict.status is Status.UNSUPPORTED, verdict.reason
    assert "need a CUDA GPU" in verdict.reason
    assert "--interpret" in verdict.reason


# -- broken tasks ------------------------------------------------------------------------------

TASK_HEAD = "import torch\nimport torch.nn as nn\n\n"
IDENTITY_MODEL = "class Model(nn.Module):\n    def forward(self, x):\n        return x\n\n"
INIT = "def get_init_inputs():\n    return []\n"


@pytest.fixture
def worker_logs(tmp_path, monkeypatch):
    """Worker log files go under tmp_path for one test: a broken task's reference worker leaks its log."""
    import tempfile

    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(logs))
    return logs


def test_a_task_without_get_inputs_is_refused_at_load(tmp_path):
    path = tmp_path / "no_inputs.py"
    path.write_text(TASK_HEAD + IDENTITY_MODEL + INIT)
    with pytest.raises(TaskError, match="get_inputs") as caught:
        load_task(path)
    assert str(path) in str(caught.value)


def test_get_inputs_raising_is_a_task_error_naming_the_file(evaluator, tmp_path, worker_logs):
    path = tmp_path / "inputs_raise.py"
    path.write_text(TASK_HEAD + IDENTITY_MODEL + INIT
                    + "def get_inputs():\n    raise ValueError('no inputs today')\n")
    with pytest.raises(TaskError) as caught:
        evaluator.evaluate(load_task(path), candidate("cpu_gelu"))
    message = str(caught.value)
    assert str(path) in message and "get_inputs" in message and "no inputs today" in message


def test_forward_returning_a_string_is_a_task_error(evaluator, tmp_path, worker_logs):
    path = tmp_path / "string_out.py"
    path.write_text(TASK_HEAD + "class Model(nn.Module):\n    def forward(self, x):\n        return 'done'\n\n"
                    + INIT + "def get_inputs():\n    return [torch.randn(4)]\n")
    with pytest.raises(TaskError, match="must return tensors") as caught:
        evaluator.evaluate(load_task(path), candidate("cpu_gelu"))
    assert str(path) in str(caught.value)


def test_a_broken_task_leaves_no_worker_behind(evaluator, tmp_path, worker_logs):
    path = tmp_path / "inputs_raise.py"
    path.write_text(TASK_HEAD + IDENTITY_MODEL + INIT + "def get_inputs():\n    raise ValueError('no')\n")
    with pytest.raises(TaskError):
        evaluator.evaluate(load_task(path), candidate("cpu_gelu"))
    assert list(worker_logs.glob("kernelwright-reference-*.log")) == []


def test_the_evaluator_still_works_after_a_broken_task(evaluator):
    verdict = evaluator.evaluate(task("gelu"), candidate("cpu_gelu"))
    assert verdict.status is Status.PASSED, verdict.reason
