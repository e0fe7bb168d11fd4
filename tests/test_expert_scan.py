"""Scans and cross-entropy in the expert: the analysis of the suite's cumsum, reverse cumsum, exclusive
cumprod and cross-entropy tasks (and what it refuses), and the templates' candidates against the tasks'
own references at the corners of their spaces and small shapes: Triton's under the CPU interpreter (in a
fresh process), the C++ ones here.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
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
    Const,
    CrossEntropy,
    Input,
    Pattern,
    Scan,
    Unsupported,
    Value,
    Weight,
)
from kernelwright.generate.expert.templates import (
    all_templates,
    cpu_scan,
    defaults,
    triton_scan,
)
from kernelwright.paths import CACHE_ENV
from kernelwright.task import load_task

ROOT = Path(__file__).parent.parent
BUILTIN = ROOT / "src" / "kernelwright" / "suites" / "builtin"
X = Input(0)
TEMPLATES = {t.name: t for t in triton_scan.TEMPLATES + cpu_scan.TEMPLATES}


def pattern_of(tmp_path: Path, forward: str, inputs: str = "[torch.randn(rows, cols)]", **kwargs: str) -> Pattern:
    return analysis_of(write_task(tmp_path, "task", forward, inputs, **kwargs)).pattern


# -- analysis ----------------------------------------------------------------------------------------

def test_the_suite_s_scans_and_cross_entropy_are_recognized_with_their_fields() -> None:
    found = {name: analysis_of(BUILTIN / f"{name}.py").pattern for name in (
        "reduce_cumsum_topp", "reduce_reverse_cumsum", "reduce_cumprod_nerf", "loss_cross_entropy")}
    assert found["reduce_cumsum_topp"] == Scan("sum", X, (2048, 128256), "float32")
    assert found["reduce_reverse_cumsum"] == Scan("sum", X, (131072, 1000), "float32", reverse=True)
    # cumprod(cat([ones, 1 - alpha + 1e-10]))[:, :-1] * alpha: the exclusive product, then alpha * it.
    assert found["reduce_cumprod_nerf"] == Scan(
        "prod", Call("add", (Call("sub", (Const(1.0), X)), Const(1e-10))), (2073600, 192), "float32",
        exclusive=True, epilogue=Call("mul", (X, Value())))
    assert found["loss_cross_entropy"] == CrossEntropy(X, Input(1), -100, "mean", (8192, 32000), "float32")


@pytest.mark.parametrize(("forward", "expected"), [
    ("x.cumsum(-1)", Scan("sum", X, (8, 32), "float32")),
    ("torch.cumprod(torch.sigmoid(x), dim=1) * 2.0",
     Scan("prod", Call("sigmoid", (X,)), (8, 32), "float32", epilogue=Call("mul", (Value(), Const(2.0))))),
    ("x.flip(-1).cumsum(-1).flip(-1)", Scan("sum", X, (8, 32), "float32", reverse=True)),
    ("torch.fliplr(torch.cumsum(torch.fliplr(x), 1))", Scan("sum", X, (8, 32), "float32", reverse=True)),
    ("torch.cumsum(torch.cat([x.new_zeros(rows, 1), x], dim=-1), -1)[..., :-1]",
     Scan("sum", X, (8, 32), "float32", exclusive=True)),
    # Both idioms at once: the sum of the columns after each one.
    ("torch.flip(torch.cumsum(torch.cat([x.new_full((rows, 1), 0.0), torch.flip(x, [1])], 1), 1)[:, :-1], [1])",
     Scan("sum", X, (8, 32), "float32", reverse=True, exclusive=True)),
])
def test_scan_spellings(tmp_path: Path, forward: str, expected: Scan) -> None:
    assert pattern_of(tmp_path, forward) == expected


def test_a_scan_prologue_may_read_a_row_weight_and_a_3d_input_scans_its_last_dim(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "torch.cumsum(x * self.w, dim=2)", inputs="[torch.randn(2, rows, cols)]",
                         init="self.w = nn.Parameter(torch.randn(cols))")
    assert pattern == Scan("sum", Call("mul", (X, Weight("w", "row"))), (2, 8, 32), "float32")


def test_cross_entropy_as_a_module_over_viewed_inputs(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "self.loss(x.view(-1, x.shape[-1]), t.reshape(-1))", args="x, t",
                         init='self.loss = nn.CrossEntropyLoss(ignore_index=3, reduction="sum")',
                         inputs="[torch.randn(2, rows, cols), torch.randint(0, cols, (2, rows))]")
    assert pattern == CrossEntropy(X, Input(1), 3, "sum", (16, 32), "float32")


ROWS_COLS = "torch.randn(rows, cols)"
WITH_TARGETS = "torch.randn(rows, cols), torch.randint(0, cols, (rows,))"


@pytest.mark.parametrize(("forward", "inputs", "why"), [
    ("torch.cumsum(x, dim=0)", ROWS_COLS, r"cumsum over dim 0 of \(8, 32\); the expert scans the last dimension only"),
    ("torch.flip(torch.cumsum(x, -1), [-1])", ROWS_COLS, "cumsum with a flip on one side only"),
    ("torch.cumprod(torch.cat([torch.zeros_like(x[:, :1]), x], -1), -1)[:, :-1]", ROWS_COLS,
     "cumprod of a concatenation or sliced after it, not both"),
    ("torch.cumsum(x, -1) + torch.cumprod(x, -1)", ROWS_COLS, "cumprod with cumsum; the expert writes one scan"),
    ("torch.cumsum(x, -1).sum(-1)", ROWS_COLS, "sum with cumsum"),
    ("F.cross_entropy(x, t, label_smoothing=0.1)", WITH_TARGETS, "cross_entropy with label_smoothing=0.1"),
    ("F.cross_entropy(x, t, weight=x.new_ones(x.shape[-1]))", WITH_TARGETS, "cross_entropy with class weights"),
    ("F.cross_entropy(x, t) * 2.0", WITH_TARGETS, "the cross_entropy's result is computed on"),
    ("F.cross_entropy(x, t)", "torch.randn(rows, cols), torch.randn(rows, cols).softmax(-1)",
     "cross_entropy with targets that are not N int64 class indices"),
    ("F.cross_entropy(x.transpose(1, 2), t)", "torch.randn(2, rows, cols), torch.randint(0, cols, (2, rows))",
     r"cross_entropy of logits shaped \(2, 32, 8\); the expert reads \(N, C\) logits"),
])
def test_other_scans_and_losses_are_refused_in_one_line(tmp_path: Path, forward: str, inputs: str, why: str) -> None:
    with pytest.raises(Unsupported, match=why) as refused:
        pattern_of(tmp_path, forward, inputs=f"[{inputs}]", args="x, t" if "cross_entropy" in forward else "x")
    assert "\n" not in str(refused.value)


# -- templates ---------------------------------------------------------------------------------------

def suite(name: str) -> Analysis:
    return analysis_of(BUILTIN / f"{name}.py")


def template_for(analysis: Analysis, backend: str = "triton") -> Any:
    [template] = [t for t in all_templates() if t.backend == backend and t.matches(analysis)]
    return template


def corners(template: Any, analysis: Analysis) -> list[dict[str, Any]]:
    space = template.space(analysis)
    ends = [dict.fromkeys((values[0], values[-1])) for values in space.values()]
    return [dict(zip(space, combo)) for combo in itertools.product(*ends)]


def custom_tasks(folder: Path) -> dict[str, Path]:
    """Small tasks for what the suite does not hold: both idioms with a weight in the prologue and an
    input in the epilogue, a 3-D inclusive cumprod, cross-entropy as a summing module over views, and a
    per-row loss."""
    return {
        "reverse_exclusive": write_task(
            folder, "reverse_exclusive",
            "0.5 * torch.flip(torch.cumsum(torch.cat([torch.zeros_like(x[:, :1]), torch.flip(x * self.w, [-1])], "
            "-1), -1)[:, :-1], [-1]) + x",
            "[torch.randn(rows, cols)]", init="self.w = nn.Parameter(torch.randn(cols))"),
        "cumprod_3d": write_task(folder, "cumprod_3d", "torch.cumprod(torch.sigmoid(x) + 0.5, dim=2)",
                                 "[torch.randn(2, rows, cols)]"),
        "ce_module_sum": write_task(
            folder, "ce_module_sum", "self.loss(x.view(-1, x.shape[-1]), t.view(-1))",
            "[torch.randn(2, rows, cols) * 3.0, torch.randint(0, 3, (2, rows))]", args="x, t",
            init='self.loss = nn.CrossEntropyLoss(ignore_index=2, reduction="sum")'),
        "ce_none": write_task(
            folder, "ce_none", 'F.cross_entropy(x, t, ignore_index=-1, reduction="none")',
            "[torch.randn(rows, cols), torch.where(torch.rand(rows) < 0.3, -1, torch.randint(0, cols, (rows,)))]",
            args="x, t"),
    }


# Per task: the shapes (task globals) each corner runs at: rows narrower than a tile (several rows per
# program) and rows wider than the largest tile of the corners (scanned in carried steps).
SUITE_SHAPES = {
    "reduce_cumsum_topp": [{"batch": 5, "vocab": 33}, {"batch": 3, "vocab": 8500}],
    "reduce_reverse_cumsum": [{"trajectories": 9, "steps": 77}, {"trajectories": 3, "steps": 4500}],
    "reduce_cumprod_nerf": [{"rays": 10, "samples": 97}, {"rays": 3, "samples": 4500}],
    "loss_cross_entropy": [{"tokens": 6, "vocab": 37}, {"tokens": 40, "vocab": 8500}],
}
CUSTOM_SHAPES = [{"rows": 5, "cols": 33}, {"rows": 3, "cols": 4500}]
BF16 = {"reduce_cumsum_topp": {"batch": 3, "vocab": 2100}, "loss_cross_entropy": {"tokens": 20, "vocab": 2100},
        "reverse_exclusive": {"rows": 3, "cols": 2100}}


def jobs(folder: Path, backend: str = "triton") -> dict[str, list[dict[str, Any]]]:
    """Every corner at every shape in fp32; for Triton, the first two corners in bf16 too where BF16 names
    the task (the C++ templates write fp32 only)."""
    tasks = {name: BUILTIN / f"{name}.py" for name in SUITE_SHAPES} | custom_tasks(folder)
    by_task = {}
    for name, path in tasks.items():
        analysis = analysis_of(path)
        template = template_for(analysis, backend)
        points = corners(template, analysis)
        runs = [(params, shape, "float32") for params in points for shape in SUITE_SHAPES.get(name, CUSTOM_SHAPES)]
        runs += [(params, BF16[name], "bfloat16") for params in points[:2] if name in BF16 and backend == "triton"]
        by_task[name] = [task_job(path, analysis, template.name, params, shape, dtype) for params, shape, dtype in runs]
    return by_task


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, list[str | None]]:
    """Every task's jobs in one interpreter process."""
    from interpreted_task_runs import run_task_job_groups

    pytest.importorskip("triton")
    return run_task_job_groups(jobs(tmp_path_factory.mktemp("scan-tasks")))


@pytest.mark.parametrize("name", [*SUITE_SHAPES, "reverse_exclusive", "cumprod_3d", "ce_module_sum", "ce_none"])
def test_corners_compute_the_task_s_reference_under_the_interpreter(outcomes, name: str) -> None:
    failures = [outcome for outcome in outcomes[name] if outcome is not None]
    assert not failures, "\n".join(failures)
    assert len(outcomes[name]) >= 8  # 2 shapes x at least 4 corners


def test_cpu_corners_compute_the_task_s_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from interpreted_task_runs import cpu_job_failures

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # the compiled libraries: this test's own
    failures = cpu_job_failures([job for its in jobs(tmp_path, "cpu").values() for job in its])
    assert not failures, "\n".join(failures)


def test_each_pattern_has_its_template_and_wide_rows_get_wide_tiles() -> None:
    topp, nerf, ce = (suite(name) for name in ("reduce_cumsum_topp", "reduce_cumprod_nerf", "loss_cross_entropy"))
    assert template_for(topp).name == template_for(nerf).name == "triton.scan"
    assert template_for(ce).name == "triton.cross_entropy"
    assert defaults(TEMPLATES["triton.scan"], topp) == {"BLOCK": 4096, "num_warps": 8}  # 128256 columns
    assert defaults(TEMPLATES["triton.scan"], nerf) == {"BLOCK": 1024, "num_warps": 4}  # 192: 4 rows a tile
    assert defaults(TEMPLATES["triton.cross_entropy"], ce) == {"strategy": "tile", "BLOCK": 4096, "num_warps": 8}
    assert template_for(topp, "cpu").name == "cpu.scan" and template_for(ce, "cpu").name == "cpu.cross_entropy"


def test_patterns_the_kernels_cannot_write_do_not_match() -> None:
    def scan(**changes: Any) -> Analysis:
        fields = {"kind": "sum", "prologue": X, "shape": (8, 32), "dtype": "float32"} | changes
        return Analysis(Scan(**fields), ("x",), "", "")

    def loss(**changes: Any) -> Analysis:
        fields = {"logits": X, "targets": Input(1), "ignore_index": -100, "reduction": "mean", "shape": (8, 32),
                  "dtype": "float32"} | changes
        return Analysis(CrossEntropy(**fields), ("x", "t"), "", "")

    assert TEMPLATES["triton.scan"].matches(scan()) and TEMPLATES["triton.cross_entropy"].matches(loss())
    refused = [scan(kind="max"), scan(dtype="float64"), scan(prologue=Call("lgamma", (X,))),
               scan(prologue=Weight("w", "row")), scan(prologue=Input(0, "broadcast")),
               loss(reduction="batchmean"), loss(dtype="float64"), loss(targets=Input(2))]
    for analysis in refused:
        assert not any(t.matches(analysis) for t in TEMPLATES.values()), analysis
    assert not TEMPLATES["cpu.scan"].matches(scan(dtype="bfloat16"))  # Triton's only


def test_candidates_launch_only_kernels_and_render_a_source_per_point() -> None:
    for name, backend in itertools.product(("reduce_reverse_cumsum", "reduce_cumprod_nerf", "loss_cross_entropy"),
                                           ("triton", "cpu")):
        analysis = suite(name)
        template = template_for(analysis, backend)
        space = template.space(analysis)
        sources = {template.render(analysis, dict(zip(space, combo))) for combo in itertools.product(*space.values())}
        assert len(sources) == len(list(itertools.product(*space.values()))), name
        for source in sources:
            report = check_candidate(source)
            assert report.ok and report.backends == {backend}, (name, report.summary())


# -- compiled for a GPU ---------------------------------------------------------------------------------
# The interpreter runs kernels as numpy, forgiving what the compiler refuses (a loop-carried value that
# changes type, say); Triton compiles for an H100 without one, so each kernel the candidates launch is
# compiled here too, to PTX and through ptxas.

def compile_for_h100(source: str, name: str, dtype: str) -> list[str]:
    """Compile for sm_90 every kernel launch the candidate makes for the suite task `name` at its main shapes
    (read on the meta device); the kernels' names."""
    import tempfile

    import torch
    from sm90_launches import compile_for_sm90, launches_of, load_module

    task = load_module(BUILTIN / f"{name}.py")
    folder = Path(tempfile.mkdtemp(prefix="kw-scan-"))
    launches = launches_of(source, task, ("kw_scan", "kw_ce_rows", "kw_ce_total"), getattr(torch, dtype), folder)
    return [launch[0].__name__ for launch in launches if compile_for_sm90(launch)]


@pytest.mark.parametrize(("name", "dtype"), [
    ("reduce_reverse_cumsum", "float32"), ("reduce_cumprod_nerf", "float32"), ("reduce_cumsum_topp", "bfloat16"),
    ("loss_cross_entropy", "float32"), ("loss_cross_entropy", "bfloat16"),
])
def test_the_kernels_compile_for_an_h100(sm90_compiler, name: str, dtype: str) -> None:
    analysis = suite(name)
    analysis = Analysis(replace(analysis.pattern, dtype=dtype), analysis.forward_args, analysis.init_source,
                        analysis.imports)
    template = template_for(analysis)
    # Each strategy at the defaults, compiled as the task's main shapes launch it.
    for strategy in template.space(analysis).get("strategy", [None]):
        params = defaults(template, analysis) | ({"strategy": strategy} if strategy else {})
        expected = ["kw_ce_rows", "kw_ce_total"] if template.name == "triton.cross_entropy" else ["kw_scan"]
        assert compile_for_h100(template.render(analysis, params), name, dtype) == expected


# -- through the evaluator ------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from quick_evaluator(tmp_path_factory)


@pytest.mark.parametrize(("name", "main", "variant"), [
    ("loss_cross_entropy", {"tokens": 64, "vocab": 1000}, {"tokens": 7, "vocab": 333}),
    ("reduce_cumprod_nerf", {"rays": 50, "samples": 192}, {"rays": 7, "samples": 97}),
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
