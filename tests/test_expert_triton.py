"""The Triton expert templates, under Triton's CPU interpreter: candidates they render compute what the
reference does, at every corner of their spaces, on rows narrower and wider than a tile, in fp32 and bf16;
and a sample passes the real evaluator.

The cases are tests/expert_cases.py's (small tasks with hand-built Analyses).
"""

from __future__ import annotations

import itertools
from typing import Any

import expert_cases
import pytest
from expert_cases import CASES, PLAIN_INIT, SHAPE, Case, X, call, pointwise, reduce
from interpreted_evaluation import quick_evaluator
from interpreted_runs import run_jobs

from kernelwright.candidate import Candidate
from kernelwright.evaluate.checks import check_candidate
from kernelwright.evaluate.verdict import Status
from kernelwright.generate.expert.patterns import (
    Analysis,
    Call,
    Pointwise,
    Value,
    Weight,
)
from kernelwright.generate.expert.templates import defaults, triton
from kernelwright.task import load_task

pytest.importorskip("triton")

TEMPLATES = {t.name: t for t in triton.TEMPLATES}
# Shapes: a row narrower than any tile, a row of several looped tiles (the smallest BLOCK is 1024), one element.
SHAPES = [(7, 333), (3, 5000), (1, 1)]


def template_for(case: Case):
    return expert_cases.template_for(case, triton.TEMPLATES)


def corners(case: Case) -> list[dict[str, Any]]:
    return expert_cases.corners(template_for(case), case.analysis())


def jobs_for(name: str) -> list[dict[str, Any]]:
    """Every corner of the case's space at every test shape in fp32; the first two corners in bf16."""
    case = CASES[name]
    template = template_for(case).name
    fp32 = [{"case": name, "template": template, "params": params, "rows": rows, "cols": cols, "dtype": "float32"}
            for params in corners(case) for rows, cols in SHAPES]
    bf16 = [{"case": name, "template": template, "params": params, "rows": 5, "cols": 2100, "dtype": "bfloat16"}
            for params in corners(case)[:2]]
    return fp32 + bf16


@pytest.fixture(scope="module")
def outcomes() -> dict[str, list[str | None]]:
    """Each case's jobs run in one interpreter process for the whole module (imports cost seconds)."""
    jobs = {name: jobs_for(name) for name in sorted(CASES)}
    flat = run_jobs([job for name in sorted(jobs) for job in jobs[name]])
    by_case, at = {}, 0
    for name in sorted(jobs):
        by_case[name], at = flat[at:at + len(jobs[name])], at + len(jobs[name])
    return by_case


@pytest.mark.parametrize("name", sorted(CASES))
def test_corners_compute_the_reference_in_fp32_and_bf16(outcomes, name):
    failures = [outcome for outcome in outcomes[name] if outcome is not None]
    assert not failures, "\n".join(failures)
    assert len(outcomes[name]) == len(jobs_for(name))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_corner_passes_the_static_rules(name):
    case = CASES[name]
    for params in corners(case):
        report = check_candidate(template_for(case).render(case.analysis(), params))
        assert not report.violations, (name, params, report.violations)


def test_each_case_has_one_template_and_defaults_follow_the_row_width():
    assert {template_for(case).name for case in CASES.values()} == set(TEMPLATES)
    softmax = CASES["softmax"].analysis()
    assert defaults(TEMPLATES["triton.row_reduce"], softmax)["strategy"] == "single_pass"  # 1000 columns fit
    wide = Analysis(reduce("softmax", shape=(64, 128256)), ("x",), PLAIN_INIT, "")
    assert defaults(TEMPLATES["triton.row_reduce"], wide)["strategy"] == "looped"  # a vocabulary does not
    assert defaults(TEMPLATES["triton.pointwise"], CASES["gelu"].analysis()) == {"BLOCK": 1024, "num_warps": 4}


def test_every_point_of_a_space_renders_its_own_source():
    for name in ("chain", "softmax", "rms_norm"):
        case = CASES[name]
        template = template_for(case)
        space = template.space(case.analysis())
        sources = {template.render(case.analysis(), dict(zip(space, combo)))
                   for combo in itertools.product(*space.values())}
        # single_pass ignores BLOCK: its tile is the row.
        expected = len(sources) if "strategy" not in space else (
            len(space["num_warps"]) * (1 + len(space["BLOCK"])))
        assert len(sources) == expected, name


def test_unsupported_patterns_do_not_match():
    unknown_op = Analysis(pointwise(Call("lgamma", (X,))), ("x",), PLAIN_INIT, "")
    odd_power = Analysis(pointwise(call("pow", X, 1.7)), ("x",), PLAIN_INIT, "")
    no_full_leaf = Analysis(pointwise(call("add", Weight("bias"), 1.0)), ("x",), PLAIN_INIT, "")
    row_epilogue = Analysis(reduce("sum", epilogue=call("add", Value(), Weight("bias"))), ("x",), PLAIN_INIT, "")
    index_epilogue = Analysis(reduce("argmax", epilogue=call("add", Value(), 1.0)), ("x",), PLAIN_INIT, "")
    integer = Analysis(Pointwise(call("relu", X), SHAPE, "int32"), ("x",), PLAIN_INIT, "")
    for analysis in (unknown_op, odd_power, no_full_leaf, row_epilogue, index_epilogue, integer):
        assert not any(t.matches(analysis) for t in triton.TEMPLATES), analysis


def test_rendered_source_reuses_the_task_init_and_launches_only_kernels():
    analysis = CASES["layer_norm"].analysis()
    source = TEMPLATES["triton.norm"].render(analysis, defaults(TEMPLATES["triton.norm"], analysis))
    assert "class ModelNew(nn.Module):\n    def __init__(self, cols):" in source
    assert "nn.init.normal_(self.ln.bias)" in source
    assert "self.ln.weight.contiguous()" in source and "self.ln.bias.contiguous()" in source
    assert "@triton.jit" in source and "class Model(" not in source


# -- through the evaluator ---------------------------------------------------------------------------

EVALUATED = ["softmax", "rms_norm_and_sum"]  # one row reduction, one norm; the interpreter runs cover the rest


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from quick_evaluator(tmp_path_factory)


@pytest.mark.parametrize("name", EVALUATED)
def test_default_candidate_passes_the_evaluator(evaluator, tmp_path, name):
    case = CASES[name]
    template = template_for(case)
    source = template.render(case.analysis(), defaults(template, case.analysis()))
    verdict = evaluator.evaluate(load_task(case.write(tmp_path)), Candidate(source, f"{template.name}-{name}"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
    assert verdict.candidate["backends"] == ["triton"]
