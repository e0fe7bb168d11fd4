"""The distillation loss in the expert: the analysis of the suite's KL-divergence task and its spellings (and
what it refuses), and the templates' candidates against the tasks' own references at the corners of their
spaces and small shapes: Triton's under the CPU interpreter (in a fresh process), the C++ one here.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import expert_tasks
import pytest
from expert_tasks import analysis_of
from interpreted_evaluation import quick_evaluator, small_suite_copy
from interpreted_task_runs import task_job

from kernelwright.evaluate.checks import check_candidate
from kernelwright.generate.expert.patterns import (
    Analysis,
    Call,
    Const,
    Input,
    KLDivergence,
    Pattern,
    Unsupported,
    Value,
    Weight,
)
from kernelwright.generate.expert.templates import (
    all_templates,
    cpu_kl,
    defaults,
    triton_kl,
)
from kernelwright.paths import CACHE_ENV
from kernelwright.task import load_task

ROOT = Path(__file__).parent.parent
BUILTIN = ROOT / "src" / "kernelwright" / "suites" / "builtin"
X, T = Input(0), Input(1)
TEMPLATES = {t.name: t for t in triton_kl.TEMPLATES + cpu_kl.TEMPLATES}
# Student logits near the teacher's, with a per-row error level: the suite task's inputs, small.
INPUTS = "[(t := torch.randn(rows, cols) * 4.0) + torch.rand(rows, 1) * 3.0 * torch.randn(rows, cols), t]"


def write_task(folder: Path, name: str, forward: str, inputs: str = INPUTS, init: str = "pass") -> Path:
    """A task of (x, t) over globals rows and cols (the jobs shrink them; `init` gets cols): `return forward`."""
    return expert_tasks.write_task(folder, name, forward, inputs, init, args="x, t")


def pattern_of(tmp_path: Path, forward: str, **kwargs: str) -> Pattern:
    return analysis_of(write_task(tmp_path, "task", forward, **kwargs)).pattern


# -- analysis ----------------------------------------------------------------------------------------

def test_the_suite_s_distillation_loss_is_recognized_with_its_fields() -> None:
    halved = [Call("div", (leaf, Const(2.0))) for leaf in (X, T)]
    times_t_squared = Call("mul", (Call("mul", (Value(), Const(2.0))), Const(2.0)))
    assert analysis_of(BUILTIN / "loss_kl_distill.py").pattern == KLDivergence(
        *halved, "batchmean", (4096, 30522), "float32", times_t_squared)


TEMP = Weight("temp", "scalar")


@pytest.mark.parametrize(("forward", "init", "inputs", "expected"), [
    ('F.kl_div(F.log_softmax(x, -1), F.log_softmax(t, -1), reduction="sum", log_target=True)', "pass", INPUTS,
     KLDivergence(X, T, "sum", (8, 32), "float32")),
    ("self.loss(torch.log_softmax(x, dim=1), t.log_softmax(-1))",
     'self.loss = nn.KLDivLoss(reduction="batchmean", log_target=True)', INPUTS,
     KLDivergence(X, T, "batchmean", (8, 32), "float32")),
    # F.kl_div's default reduction is "mean"; casts are skipped, nn.Softmax is softmax.
    ("F.kl_div(F.log_softmax(x.float() * 0.5, dim=2), self.softmax(t))", "self.softmax = nn.Softmax(dim=-1)",
     "[torch.randn(2, rows, cols), torch.randn(2, rows, cols)]",
     KLDivergence(Call("mul", (X, Const(0.5))), T, "mean", (2, 8, 32), "float32")),
    # The temperature as a buffer: a scalar leaf in both logits and in the epilogue.
    ('F.kl_div(F.log_softmax(x / self.temp, -1), F.softmax(t / self.temp, -1), reduction="batchmean") * self.temp '
     "* self.temp", 'self.register_buffer("temp", torch.tensor(2.0))', INPUTS,
     KLDivergence(Call("div", (X, TEMP)), Call("div", (T, TEMP)), "batchmean", (8, 32), "float32",
                  Call("mul", (Call("mul", (Value(), TEMP)), TEMP)))),
])
def test_distillation_loss_spellings(tmp_path: Path, forward: str, init: str, inputs: str,
                                     expected: KLDivergence) -> None:
    assert pattern_of(tmp_path, forward, init=init, inputs=inputs) == expected


KL = "F.kl_div(F.log_softmax(x, -1), F.softmax(t, -1){})"


@pytest.mark.parametrize(("forward", "why"), [
    (KL.format(', reduction="none"'), "kl_div with size_average, reduce or reduction 'none'; the expert writes the "
                                      "summed loss"),
    ('F.kl_div(F.log_softmax(x, -1), t, reduction="batchmean")',
     r"kl_div whose input is not log_softmax or whose target is not softmax \(log_target=False\) of logits"),
    (KL.format(", log_target=True"), r"whose target is not log_softmax \(log_target=True\)"),
    ("F.kl_div(F.log_softmax(x, -1), F.softmax(t, 0))", "whose target is not softmax"),
    ("F.kl_div(torch.log(F.softmax(x, -1)), F.softmax(t, -1))", "kl_div whose input is not log_softmax"),
    (KL.format("") + " + x.sum()", "sum with kl_div; the expert writes one loss per kernel"),
    (KL.format("") + " * x", "the kl_div's result is combined with tensors"),
])
def test_other_kl_divergences_are_refused_in_one_line(tmp_path: Path, forward: str, why: str) -> None:
    with pytest.raises(Unsupported, match=why) as refused:
        pattern_of(tmp_path, forward)
    assert "\n" not in str(refused.value) and "task.py:" in str(refused.value)  # names the task line


# -- templates ---------------------------------------------------------------------------------------

def suite() -> Analysis:
    return analysis_of(BUILTIN / "loss_kl_distill.py")


def template_for(analysis: Analysis, backend: str = "triton") -> Any:
    [template] = [t for t in all_templates() if t.backend == backend and t.matches(analysis)]
    return template


def corners(template: Any, analysis: Analysis) -> list[dict[str, Any]]:
    space = template.space(analysis)
    ends = [dict.fromkeys((values[0], values[-1])) for values in space.values()]
    return [dict(zip(space, combo)) for combo in itertools.product(*ends)]


def custom_tasks(folder: Path) -> dict[str, Path]:
    """Small tasks for what the suite does not hold: log-target sums through the module, a 3-D mean with a
    row-wise prologue, and a temperature held as a buffer (a scalar leaf in the logits and the epilogue)."""
    return {
        "module_log_target_sum": write_task(
            folder, "module_log_target_sum", "self.loss(F.log_softmax(x, -1), F.log_softmax(t * 1.5, -1))",
            init='self.loss = nn.KLDivLoss(reduction="sum", log_target=True)'),
        "mean_3d": write_task(
            folder, "mean_3d", "F.kl_div(F.log_softmax(x + self.b, -1), F.softmax(t, -1), reduction='mean')",
            inputs="[torch.randn(2, rows, cols) * 3.0, torch.randn(2, rows, cols) * 3.0]",
            init="self.b = nn.Parameter(torch.randn(cols))"),
        "buffer_temperature": write_task(
            folder, "buffer_temperature",
            'F.kl_div(F.log_softmax(x / self.temp, -1), F.softmax(t / self.temp, -1), reduction="batchmean") '
            "* self.temp * self.temp",
            init='self.register_buffer("temp", torch.tensor(3.0))'),
    }


# The shapes (task globals) each corner runs at: rows narrower than a tile (of 13 elements, some with no
# 16-aligned block inside: only the elements either side), and rows wider than the largest tile of the
# corners (several steps of the online sums).
SUITE_SHAPES = [{"positions": 6, "vocab": 37}, {"positions": 5, "vocab": 8500}]
CUSTOM_SHAPES = [{"rows": 5, "cols": 13}, {"rows": 3, "cols": 4500}]
BF16 = {"loss_kl_distill": {"positions": 20, "vocab": 2100}, "buffer_temperature": {"rows": 20, "cols": 2100}}


def jobs(folder: Path, backend: str = "triton") -> dict[str, list[dict[str, Any]]]:
    """Every corner at every shape in fp32; for Triton, the first two corners in bf16 too where BF16 names
    the task (the C++ template writes fp32 only)."""
    tasks = {"loss_kl_distill": BUILTIN / "loss_kl_distill.py"} | custom_tasks(folder)
    by_task = {}
    for name, path in tasks.items():
        analysis = analysis_of(path)
        template = template_for(analysis, backend)
        points = corners(template, analysis)
        shapes = SUITE_SHAPES if name == "loss_kl_distill" else CUSTOM_SHAPES
        runs = [(params, shape, "float32") for params in points for shape in shapes]
        runs += [(params, BF16[name], "bfloat16") for params in points[:2] if name in BF16 and backend == "triton"]
        by_task[name] = [task_job(path, analysis, template.name, params, shape, dtype) for params, shape, dtype in runs]
    return by_task


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, list[str | None]]:
    """Every task's jobs in one interpreter process."""
    from interpreted_task_runs import run_task_job_groups

    pytest.importorskip("triton")
    return run_task_job_groups(jobs(tmp_path_factory.mktemp("kl-tasks")))


@pytest.mark.parametrize("name", ["loss_kl_distill", "module_log_target_sum", "mean_3d", "buffer_temperature"])
def test_corners_compute_the_task_s_reference_under_the_interpreter(outcomes, name: str) -> None:
    failures = [outcome for outcome in outcomes[name] if outcome is not None]
    assert not failures, "\n".join(failures)
    assert len(outcomes[name]) >= 16  # 2 shapes x 8 corners


def test_cpu_corners_compute_the_task_s_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from interpreted_task_runs import cpu_job_failures

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # the compiled libraries: this test's own
    failures = cpu_job_failures([job for its in jobs(tmp_path, "cpu").values() for job in its])
    assert not failures, "\n".join(failures)


def test_the_pattern_has_its_templates_and_small_tiles_come_first() -> None:
    analysis = suite()
    assert template_for(analysis).name == "triton.kl_div" and template_for(analysis, "cpu").name == "cpu.kl_div"
    assert defaults(TEMPLATES["triton.kl_div"], analysis) == {"strategy": "tile", "BLOCK": 1024, "num_warps": 4}


def test_patterns_the_kernels_cannot_write_do_not_match() -> None:
    def loss(**changes: Any) -> Analysis:
        fields = {"student": X, "teacher": T, "reduction": "batchmean", "shape": (8, 32), "dtype": "float32"}
        return Analysis(KLDivergence(**(fields | changes)), ("x", "t"), "", "")

    assert all(t.matches(loss()) for t in TEMPLATES.values())
    refused = [loss(reduction="none"), loss(dtype="float64"), loss(student=Call("lgamma", (X,))),
               loss(teacher=Input(1, "broadcast")), loss(teacher=Input(2)), loss(teacher=Weight("w", "row")),
               loss(epilogue=Call("mul", (Value(), Input(0))))]
    for analysis in refused:
        assert not any(t.matches(analysis) for t in TEMPLATES.values()), analysis
    # The C++ call knows the row count, not size(0) of more dims; fp32 only.
    assert TEMPLATES["triton.kl_div"].matches(loss(shape=(2, 8, 32)))
    assert not TEMPLATES["cpu.kl_div"].matches(loss(shape=(2, 8, 32)))
    assert TEMPLATES["cpu.kl_div"].matches(loss(shape=(2, 8, 32), reduction="mean"))
    assert not TEMPLATES["cpu.kl_div"].matches(loss(dtype="bfloat16"))


def test_candidates_launch_only_kernels_and_render_a_source_per_point() -> None:
    analysis = suite()
    for backend in ("triton", "cpu"):
        template = template_for(analysis, backend)
        space = template.space(analysis)
        sources = {template.render(analysis, dict(zip(space, combo))) for combo in itertools.product(*space.values())}
        assert len(sources) == len(list(itertools.product(*space.values())))
        for source in sources:
            report = check_candidate(source)
            assert report.ok and report.backends == {backend}, report.summary()


# -- compiled for a GPU ---------------------------------------------------------------------------------
# The interpreter forgives what the compiler refuses (a loop-carried value that changes type, say), so
# both kernels are compiled for an H100 too, to PTX and through ptxas, without one.

def compile_for_h100(source: str, dtype: str) -> dict[str, Any]:
    """Compile for sm_90 every kernel launch the candidate makes for the suite's task at its main shapes (read
    on the meta device); the compiled kernels by name."""
    import tempfile

    import torch
    from sm90_launches import compile_for_sm90, launches_of, load_module

    task = load_module(BUILTIN / "loss_kl_distill.py")
    folder = Path(tempfile.mkdtemp(prefix="kw-kl-"))
    launches = launches_of(source, task, ("kw_kl_rows", "kw_kl_total"), getattr(torch, dtype), folder)
    return {launch[0].__name__: compile_for_sm90(launch) for launch in launches}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_kernels_compile_for_an_h100(sm90_compiler, dtype: str) -> None:
    analysis = suite()
    analysis = Analysis(replace(analysis.pattern, dtype=dtype), analysis.forward_args, analysis.init_source,
                        analysis.imports)
    template = template_for(analysis)
    # Each strategy at the defaults, compiled as the task's main shapes launch it. Rows of 30522 elements
    # start anywhere, yet the tiles of their 16-aligned interiors load in 128-bit vectors.
    for strategy in template.space(analysis)["strategy"]:
        params = defaults(template, analysis) | {"strategy": strategy}
        kernels = compile_for_h100(template.render(analysis, params), dtype)
        assert list(kernels) == ["kw_kl_rows", "kw_kl_total"]
        assert "ld.global.v4" in kernels["kw_kl_rows"].asm["ptx"], (strategy, dtype)


# -- through the evaluator ------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from quick_evaluator(tmp_path_factory)


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_default_candidates_pass_the_evaluator(evaluator, tmp_path: Path, backend: str) -> None:
    from kernelwright.candidate import Candidate
    from kernelwright.evaluate.verdict import Status

    path = small_suite_copy("loss_kl_distill", tmp_path, {"positions": 64, "vocab": 1000},
                            {"positions": 7, "vocab": 333})
    analysis = analysis_of(path)
    template = template_for(analysis, backend)
    source = template.render(analysis, defaults(template, analysis))
    verdict = evaluator.evaluate(load_task(path), Candidate(source, f"{template.name}-loss_kl_distill"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
