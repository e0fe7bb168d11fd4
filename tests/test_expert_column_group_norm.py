"""Reductions over middle dims (ColumnReduce) and group norm in the expert: the analysis of the suite's
reduce_sum_tokens and norm_groupnorm (and other spellings, and what stays refused), and the templates'
candidates against the tasks' own references at the corners of their spaces and small shapes: Triton's under
the CPU interpreter (in a fresh process) and compiled for sm_90, the C++ ones here; one default candidate of
each backend through the evaluator.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from expert_tasks import analysis_of, write_task
from interpreted_evaluation import quick_evaluator, small_suite_copy
from interpreted_task_runs import task_job

from kernelwright.evaluate.checks import check_candidate
from kernelwright.generate.expert.patterns import (
    Analysis,
    Call,
    ColumnReduce,
    Const,
    Input,
    Norm,
    Pattern,
    Unsupported,
    Value,
    Weight,
)
from kernelwright.generate.expert.templates import all_templates, defaults
from kernelwright.paths import CACHE_ENV
from kernelwright.task import load_task

ROOT = Path(__file__).parent.parent
BUILTIN = ROOT / "src" / "kernelwright" / "suites" / "builtin"
X = Input(0)
NAMES = ("triton.column_reduce", "triton.group_norm", "cpu.column_reduce", "cpu.group_norm")
TEMPLATES = {t.name: t for t in all_templates() if t.name in NAMES}


def pattern_of(tmp_path: Path, forward: str, inputs: str = "[torch.randn(2, rows, cols)]", **kwargs: str) -> Pattern:
    return analysis_of(write_task(tmp_path, "task", forward, inputs, **kwargs)).pattern


def suite(name: str) -> Analysis:
    return analysis_of(BUILTIN / f"{name}.py")


# -- analysis ----------------------------------------------------------------------------------------

def test_the_suite_s_middle_sum_and_group_norm_are_recognized_with_their_fields() -> None:
    assert suite("reduce_sum_tokens").pattern == ColumnReduce("sum", X, (48, 2048, 4096), "float32", dims=1, inner=1)
    channel = (1, 2)  # a [C] vector unsqueezed to [C, 1, 1], as batch norm's
    assert suite("norm_groupnorm").pattern == Norm(
        "group", X, (6, 128, 512, 512), "float32", 1e-6, Weight("norm.weight", "broadcast", channel),
        Weight("norm.bias", "broadcast", channel), dims=3, groups=32)


@pytest.mark.parametrize(("forward", "inputs", "expected"), [
    ("torch.amax(x, dim=0)", "torch.randn(rows, cols)", ColumnReduce("max", X, (8, 32), "float32", 1, 1)),
    ("torch.max(x, 1).values", None, ColumnReduce("max", X, (2, 8, 32), "float32", 1, 1)),
    ("torch.min(x, dim=-3)[0]", "torch.randn(2, rows, 3, cols)",
     ColumnReduce("min", X, (2, 8, 3, 32), "float32", 1, 2)),
    ("x.mean(dim=(0, 1))", None, ColumnReduce("mean", X, (2, 8, 32), "float32", 2, 1)),
    ("x.exp().sum(1, keepdim=True) * 0.5", None, ColumnReduce(
        "sum", Call("exp", (X,)), (2, 8, 32), "float32", 1, 1, True, Call("mul", (Value(), Const(0.5))))),
])
def test_reductions_over_middle_dims_are_column_reductions(tmp_path: Path, forward: str, inputs: str | None,
                                                           expected: ColumnReduce) -> None:
    assert pattern_of(tmp_path, forward, **({"inputs": f"[{inputs}]"} if inputs else {})) == expected
    assert expected.start == len(expected.shape) - expected.inner - expected.dims


def test_a_column_reduction_s_row_leaf_is_a_vector_over_the_inner_dims(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "(x * self.w).sum(dim=1)", init="self.w = nn.Parameter(torch.randn(cols))")
    assert pattern == ColumnReduce("sum", Call("mul", (X, Weight("w", "row"))), (2, 8, 32), "float32", 1, 1)


def test_group_norm_spellings(tmp_path: Path) -> None:
    init = "self.w = nn.Parameter(torch.randn(cols)); self.b = nn.Parameter(torch.randn(cols))"
    functional = pattern_of(tmp_path, "torch.relu(F.group_norm(x + y, 4, self.w, self.b, 1e-3))", args="x, y",
                            inputs="[torch.randn(2, cols, rows, 3), torch.randn(2, cols, rows, 3)]", init=init)
    channel = (1, 2)
    assert functional == Norm("group", Call("add", (X, Input(1))), (2, 32, 8, 3), "float32", 1e-3,
                              Weight("w", "broadcast", channel), Weight("b", "broadcast", channel),
                              Call("relu", (Value(),)), dims=3, groups=4)
    plain = pattern_of(tmp_path, "self.norm(x) * 2.0", inputs="[torch.randn(2, cols, rows)]",
                       init="self.norm = nn.GroupNorm(8, cols, affine=False)")
    assert plain == Norm("group", X, (2, 32, 8), "float32", 1e-5, epilogue=Call("mul", (Value(), Const(2.0))),
                         dims=2, groups=8)


@pytest.mark.parametrize(("forward", "args", "inputs", "why"), [
    ("torch.logsumexp(x, dim=1)", "x", "torch.randn(2, rows, cols)",
     r"logsumexp reduces over dim 1; the expert reduces over adjacent dims: the last ones, or any for sum, mean"),
    ("x.sum(dim=(0, 2))", "x", "torch.randn(2, rows, cols)", r"sum reduces over dims \(0, 2\)"),
    ("torch.softmax(x, dim=1)", "x", "torch.randn(2, rows, cols)", "softmax reduces over dim 1"),
    ("torch.argmax(x, dim=0)", "x", "torch.randn(rows, cols)", "argmax reduces over dim 0"),
    ("F.group_norm(x, 4, w)", "x, w", "torch.randn(2, cols, rows), torch.randn(cols)",
     "group norm with a weight or bias that is not a parameter of one value per channel"),
])
def test_other_reductions_and_group_norms_are_refused_in_one_line(tmp_path: Path, forward: str, args: str,
                                                                  inputs: str, why: str) -> None:
    with pytest.raises(Unsupported, match=why) as refused:
        pattern_of(tmp_path, forward, inputs=f"[{inputs}]", args=args)
    assert "\n" not in str(refused.value)


# -- templates ---------------------------------------------------------------------------------------

def template_for(analysis: Analysis, backend: str = "triton") -> Any:
    """The one of this module's templates that writes the analysis (the suite's group norm, with rows this
    long, is also triton.norm_cooperative's: test_expert_cooperative.py)."""
    [template] = [t for t in TEMPLATES.values() if t.backend == backend and t.matches(analysis)]
    return template


def corners(template: Any, analysis: Analysis) -> list[dict[str, Any]]:
    space = template.space(analysis)
    ends = [dict.fromkeys((values[0], values[-1])) for values in space.values()]
    return [dict(zip(space, combo)) for combo in itertools.product(*ends)]


GN_INIT = "self.w = nn.Parameter(torch.rand(cols) + 0.5); self.b = nn.Parameter(torch.randn(cols))"


def custom_tasks(folder: Path) -> dict[str, Path]:
    """Small tasks for what the suite does not hold: a row weight in the prologue over two reduced leading
    dims with keepdim and an epilogue, a max with two inner dims, a min of two inputs over the first dim, a
    mean with an epilogue; group norm as a function with a residual prologue and an epilogue, over a 3-D
    input, and without an affine map."""
    return {
        "weighted_sum": write_task(folder, "weighted_sum", "(x * self.w).sum(dim=(0, 1), keepdim=True) * 0.5",
                                   "[torch.randn(2, rows, cols)]", init="self.w = nn.Parameter(torch.randn(cols))"),
        "amax_inner2": write_task(folder, "amax_inner2", "torch.amax(torch.sigmoid(x), dim=1)",
                                  "[torch.randn(2, rows, 3, cols)]"),
        "min_first": write_task(folder, "min_first", "torch.min(x + y, dim=0).values",
                                "[torch.randn(rows, cols), torch.randn(rows, cols)]", args="x, y"),
        "mean_middle": write_task(folder, "mean_middle", "torch.mean(x, dim=1) + 1.0", "[torch.randn(3, rows, cols)]"),
        "gn_functional": write_task(
            folder, "gn_functional", "torch.relu(F.group_norm(x + y, 4, self.w, self.b, 1e-3))",
            "[torch.randn(2, cols, rows, 7) + 3.0, torch.randn(2, cols, rows, 7)]", init=GN_INIT, args="x, y"),
        "gn_plain": write_task(folder, "gn_plain", "self.norm(x) * 2.0", "[torch.randn(3, cols, rows)]",
                               init="self.norm = nn.GroupNorm(2, cols, affine=False)"),
    }


# Per task: the shapes (task globals) each corner runs at: columns fewer than a program's and rows fewer than
# a step, then several column blocks and steps (and splits); for group norm (32 groups, each a thousand
# programs under the slow interpreter) channels of more elements than a tile, a few being the custom tasks'.
SUITE_SHAPES = {
    "reduce_sum_tokens": [{"batch": 3, "seq_len": 37, "hidden": 50}, {"batch": 2, "seq_len": 600, "hidden": 300}],
    "norm_groupnorm": [{"batch": 1, "channels": 64, "height": 33, "width": 35}],
}
CUSTOM_SHAPES = [{"rows": 5, "cols": 33}, {"rows": 300, "cols": 150}]
GN_SHAPES = [{"rows": 5, "cols": 8}, {"rows": 300, "cols": 12}]
BF16 = {"reduce_sum_tokens": {"batch": 2, "seq_len": 300, "hidden": 200},
        "norm_groupnorm": {"batch": 1, "channels": 64, "height": 17, "width": 19},
        "weighted_sum": {"rows": 300, "cols": 100}, "gn_functional": {"rows": 40, "cols": 8}}


def jobs(folder: Path, backend: str = "triton") -> dict[str, list[dict[str, Any]]]:
    """Every corner at the first shape in fp32, the first and last corner at the others (the interpreter is
    slow: CI's time); for Triton, the first two corners in bf16 too where BF16 names the task (the C++
    templates write fp32 only)."""
    tasks = {name: BUILTIN / f"{name}.py" for name in SUITE_SHAPES} | custom_tasks(folder)
    by_task = {}
    for name, path in tasks.items():
        analysis = analysis_of(path)
        template = template_for(analysis, backend)
        points = corners(template, analysis)
        shapes = SUITE_SHAPES.get(name, GN_SHAPES if name.startswith("gn_") else CUSTOM_SHAPES)
        runs = [(params, shapes[0], "float32") for params in points]
        runs += [(params, shape, "float32") for shape in shapes[1:] for params in (points[0], points[-1])]
        runs += [(params, BF16[name], "bfloat16") for params in points[:2] if name in BF16 and backend == "triton"]
        by_task[name] = [task_job(path, analysis, template.name, params, shape, dtype) for params, shape, dtype in runs]
    return by_task


TASK_NAMES = [*SUITE_SHAPES, "weighted_sum", "amax_inner2", "min_first", "mean_middle", "gn_functional", "gn_plain"]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, list[str | None]]:
    """Every task's jobs in one interpreter process."""
    from interpreted_task_runs import run_task_job_groups

    pytest.importorskip("triton")
    return run_task_job_groups(jobs(tmp_path_factory.mktemp("column-group-tasks")))


@pytest.mark.parametrize("name", TASK_NAMES)
def test_corners_compute_the_task_s_reference_under_the_interpreter(outcomes, name: str) -> None:
    failures = [outcome for outcome in outcomes[name] if outcome is not None]
    assert not failures, "\n".join(failures)
    assert len(outcomes[name]) >= 8  # at least 8 corners


def test_cpu_corners_compute_the_task_s_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from interpreted_task_runs import cpu_job_failures

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # the compiled libraries: this test's own
    failures = cpu_job_failures([job for its in jobs(tmp_path, "cpu").values() for job in its])
    assert not failures, "\n".join(failures)


def test_each_pattern_has_its_template_and_the_defaults_fit_the_suite_s_shapes() -> None:
    tokens, groups = suite("reduce_sum_tokens"), suite("norm_groupnorm")
    assert template_for(tokens).name == "triton.column_reduce"
    assert template_for(tokens, "cpu").name == "cpu.column_reduce"
    assert template_for(groups).name == "triton.group_norm" and template_for(groups, "cpu").name == "cpu.group_norm"
    # 48 x 4096 columns make 1536 programs of 128 columns: no split of the 2048 rows.
    assert defaults(TEMPLATES["triton.column_reduce"], tokens) == {"BLOCK": 4096, "BLOCK_I": 128, "SPLIT": 1,
                                                                   "num_warps": 4}
    # 192 groups of a million elements: 16 statistics programs per group.
    assert defaults(TEMPLATES["triton.group_norm"], groups) == {"SPLIT": 16, "BLOCK": 2048, "num_warps": 8}
    # A sum down 100000 rows of 64 columns: one column block, so the rows are split (in 256 ranges of 390).
    tall = Analysis(ColumnReduce("sum", X, (100000, 64), "float32", 1, 1), ("x",), "", "")
    assert defaults(TEMPLATES["triton.column_reduce"], tall)["SPLIT"] == 256


def test_patterns_the_kernels_cannot_write_do_not_match() -> None:
    def column(**changes: Any) -> Analysis:
        fields = {"kind": "sum", "prologue": X, "shape": (2, 8, 32), "dtype": "float32", "dims": 1,
                  "inner": 1} | changes
        return Analysis(ColumnReduce(**fields), ("x",), "", "")

    def group(**changes: Any) -> Analysis:
        fields = {"kind": "group", "prologue": X, "shape": (2, 8, 4, 4), "dtype": "float32", "eps": 1e-5,
                  "dims": 3, "groups": 2} | changes
        return Analysis(Norm(**fields), ("x",), "", "")

    assert TEMPLATES["triton.column_reduce"].matches(column()) and TEMPLATES["triton.group_norm"].matches(group())
    refused = [column(kind="logsumexp"), column(dtype="float64"), column(prologue=Call("lgamma", (X,))),
               column(epilogue=Call("add", (Value(), Weight("b", "row")))), column(prologue=Input(0, "broadcast")),
               group(epilogue=Call("add", (Value(), Weight("b", "row")))), group(outputs=("value", "prologue")),
               group(dims=2), group(prologue=Call("add", (X, Input(1, "broadcast"))))]
    for analysis in refused:
        assert not any(t.matches(analysis) for t in TEMPLATES.values()), analysis
    assert not TEMPLATES["cpu.column_reduce"].matches(column(dtype="bfloat16"))  # Triton's only
    assert not TEMPLATES["cpu.group_norm"].matches(group(dtype="bfloat16"))


def test_candidates_launch_only_kernels_and_render_a_source_per_point() -> None:
    for name, backend in itertools.product(("reduce_sum_tokens", "norm_groupnorm"), ("triton", "cpu")):
        analysis = suite(name)
        template = template_for(analysis, backend)
        space = template.space(analysis)
        sources = {template.render(analysis, dict(zip(space, combo))) for combo in itertools.product(*space.values())}
        assert len(sources) == math.prod(len(values) for values in space.values()), name
        for source in sources:
            report = check_candidate(source)
            assert report.ok and report.backends == {backend}, (name, report.summary())


# -- compiled for an H100 -------------------------------------------------------------------------------
# The interpreter runs kernels as numpy, forgiving what the compiler refuses; each launch of the suite's
# candidates (at the tasks' main shapes, read on the meta device) is compiled for sm_90 here.

@pytest.mark.parametrize("name", ["reduce_sum_tokens", "norm_groupnorm"])
def test_the_suite_s_kernels_compile_for_sm90(sm90_compiler, tmp_path: Path, name: str) -> None:
    import torch
    from sm90_launches import compile_for_sm90, launches_of, load_module

    analysis = suite(name)
    template = template_for(analysis)
    task = load_module(BUILTIN / f"{name}.py")
    kernels = ("kw_column", "kw_column_combine", "kw_gn_stats", "kw_gn_apply")
    compiled = []
    points = corners(template, analysis)
    for params in (points[0], points[-1]):  # the first and last value of every parameter
        for dtype in (torch.float32, torch.bfloat16):
            launches = launches_of(template.render(analysis, params), task, kernels, dtype, tmp_path)
            compiled += [(launch[0].__name__, compile_for_sm90(launch).metadata.shared) for launch in launches]
    kernels = {kernel for kernel, _ in compiled}
    assert kernels == ({"kw_column", "kw_column_combine"} if name == "reduce_sum_tokens" else
                       {"kw_gn_stats", "kw_gn_apply"}), compiled


# -- through the evaluator ------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from quick_evaluator(tmp_path_factory)


@pytest.mark.parametrize(("name", "main", "variant"), [
    ("reduce_sum_tokens", {"batch": 4, "seq_len": 300, "hidden": 256}, {"batch": 3, "seq_len": 37, "hidden": 77}),
    ("norm_groupnorm", {"batch": 1, "channels": 64, "height": 16, "width": 16},
     {"batch": 1, "channels": 96, "height": 9, "width": 11}),
])
@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_default_candidates_pass_the_evaluator(evaluator, tmp_path: Path, name: str, main: dict[str, int],
                                               variant: dict[str, int], backend: str) -> None:
    from kernelwright.candidate import Candidate
    from kernelwright.evaluate.verdict import Status

    path = small_suite_copy(name, tmp_path, main, variant)
    analysis = analysis_of(path)
    template = template_for(analysis, backend)
    source = template.render(analysis, defaults(template, analysis))
    verdict = evaluator.evaluate(load_task(path), Candidate(source, f"{template.name}-{name}"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
