"""The CPU expert templates: candidates they render pass the real evaluator, on the task's shapes and a variant.

The cases (tests/expert_cases.py) are small tasks with hand-built Analyses. Each
template family is rendered at every corner of its space on one task and at its
defaults on the others. One evaluator serves the module, and cases are grouped
by task so each task starts its reference once.
"""

from __future__ import annotations

import ast
import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import expert_cases
import pytest
from expert_cases import CASES as ALL_CASES
from expert_cases import PLAIN_INIT, SHAPE, Case, X, call, pointwise, reduce, run_in_process
from private_cache import seed_ceilings

from kernelwright.backends import cpu as backend_cpu
from kernelwright.candidate import Candidate
from kernelwright.evaluate.checks import check_candidate
from kernelwright.evaluate.evaluator import Evaluator
from kernelwright.evaluate.options import EvalOptions
from kernelwright.evaluate.verdict import Status
from kernelwright.generate.expert.patterns import Analysis, Call, Pointwise, Value, Weight
from kernelwright.generate.expert.templates import cpu, defaults
from kernelwright.paths import CACHE_ENV
from kernelwright.task import load_task

TEMPLATES = {t.name: t for t in cpu.TEMPLATES}
# Broadcast leaves, reductions over several dims and a norm's second output are the Triton templates' only.
TRITON_ONLY = {"channel_affine", "unsqueeze_gate", "mean_2d", "layer_norm_2d", "rms_norm_and_sum"}
CASES = {name: case for name, case in ALL_CASES.items() if name not in TRITON_ONLY}
# One task per family goes through the evaluator at its space's first and last corner (every parameter at
# its first value, then at its last), and the tasks with weights at their defaults (the evaluator hands
# weights over). The family's other corners (first and last value of each parameter), and every corner of
# the tasks with weights, run in this process (test_corners_in_process): the same checks of the source and
# the values, at other widths, in a fraction of the evaluator's time (its 14 runs of the middle corners were
# 70 s of CI's test time). Every other task runs in this process at its defaults (test_odd_shapes_in_process):
# its template's path through the evaluator is its family's, and its 10 evaluator runs were 85 s.
CORNERS = {"gelu", "softmax", "max", "layer_norm_plain"}
WEIGHTED = {name for name, case in CASES.items() if "nn.Parameter" in case.init or "nn.LayerNorm" in case.init}


def template_for(case: Case):
    return expert_cases.template_for(case, cpu.TEMPLATES)


def corners(case: Case) -> list[dict[str, Any]]:
    return expert_cases.corners(template_for(case), case.analysis())


def points(case: Case) -> list[dict[str, Any]]:
    ends = corners(case)
    return [ends[0], ends[-1]] if case.name in CORNERS else [defaults(template_for(case), case.analysis())]


RUNS = [(name, params) for name, case in CASES.items() if name in CORNERS | WEIGHTED for params in points(case)]
IN_PROCESS = [(name, params) for name in sorted(WEIGHTED | CORNERS) for params in corners(CASES[name])
              if name in WEIGHTED or params not in points(CASES[name])]


def c_source(candidate_source: str) -> str:
    """The C++ of a rendered candidate, read with ast (as test_evaluator's precompile does)."""
    [node] = [n for n in ast.walk(ast.parse(candidate_source))
              if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "SOURCE"]
    return ast.literal_eval(node.value)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A private cache holding every C++ source of this module, built up front on all cores (g++ is
    most of the time here); set in os.environ before any worker starts, so workers find them."""
    root = tmp_path_factory.mktemp("kernelwright-cache")
    seed_ceilings(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root))
        sources = {c_source(template_for(CASES[name]).render(CASES[name].analysis(), params))
                   for name, params in RUNS + IN_PROCESS}
        sources |= {c_source(template_for(case).render(case.analysis(), defaults(template_for(case), case.analysis())))
                    for case in CASES.values()}
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(backend_cpu.compile, sorted(sources)))
        yield root


@pytest.fixture(scope="module")
def evaluator(compiled):
    options = EvalOptions(device="cpu", seeds=2, baselines=("eager",), timing_budget_s=0.1, min_runs=3,
                          max_runs=5, warmup_runs=1, spare_workers=0)
    with Evaluator(options) as ev:
        yield ev


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    return {name: load_task(case.write(folder)) for name, case in CASES.items()}


@pytest.mark.parametrize("name, params", RUNS, ids=[f"{n}-" + "-".join(map(str, p.values())) for n, p in RUNS])
def test_rendered_candidate_passes(evaluator, tasks, name, params):
    case = CASES[name]
    template = template_for(case)
    source = template.render(case.analysis(), params)
    verdict = evaluator.evaluate(tasks[name], Candidate(source, f"{template.name}-{name}"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
    assert verdict.candidate["backends"] == ["cpu"]
    print(f"\n{name} {template.name} {params}: {verdict.time.median_ms:.3f} ms, "
          f"speedup vs eager {verdict.speedup['eager']:.2f}x")


@pytest.mark.parametrize("name, params", IN_PROCESS,
                         ids=[f"{n}-" + "-".join(map(str, p.values())) for n, p in IN_PROCESS])
def test_corners_in_process(compiled, name, params):
    case = CASES[name]
    source = template_for(case).render(case.analysis(), params)
    report = check_candidate(source)
    assert report.ok and report.backends == {"cpu"}, report.summary()
    run_in_process(case, source, 7, 333)


@pytest.mark.parametrize("rows, cols", [(7, 333), (3, 5000), (1, 1)])
def test_odd_shapes_in_process(compiled, rows, cols):
    """Every case at its defaults: widths the evaluator's variants skip for weights, rows wider than a
    pointwise tile (2048), a single element."""
    for case in CASES.values():
        template = template_for(case)
        run_in_process(case, template.render(case.analysis(), defaults(template, case.analysis())), rows, cols)


def test_each_case_has_one_template_and_defaults_come_first():
    families = {template_for(case).name for case in CASES.values()}
    assert families == {"cpu.pointwise", "cpu.row_reduce", "cpu.norm"}
    assert defaults(TEMPLATES["cpu.pointwise"], CASES["gelu"].analysis()) == {
        "schedule": "parallel_simd", "chunk": 0, "math": "vector"}
    assert "math" not in TEMPLATES["cpu.pointwise"].space(CASES["leaky_relu"].analysis())  # no exp, log, erf, tanh
    # Float sums first where they only scale every element (a double sum halves the loop's vectors); double
    # first where the sum is the result.
    assert defaults(TEMPLATES["cpu.norm"], CASES["layer_norm"].analysis()) == {
        "threads_over": "rows", "accumulate": "float", "unroll": False}
    assert defaults(TEMPLATES["cpu.row_reduce"], CASES["softmax"].analysis())["accumulate"] == "float"
    assert defaults(TEMPLATES["cpu.row_reduce"], CASES["sum"].analysis())["accumulate"] == "double"
    assert "accumulate" not in TEMPLATES["cpu.row_reduce"].space(CASES["argmax"].analysis())


def test_every_point_of_a_space_renders_its_own_source():
    for name in ("chain", "softmax", "rms_norm"):
        case = CASES[name]
        template = template_for(case)
        space = template.space(case.analysis())
        sources = {template.render(case.analysis(), dict(zip(space, combo)))
                   for combo in itertools.product(*space.values())}
        assert len(sources) == math.prod(len(v) for v in space.values()), name


def test_unsupported_patterns_do_not_match():
    for name in TRITON_ONLY:
        assert not any(t.matches(ALL_CASES[name].analysis()) for t in cpu.TEMPLATES), name
    bf16 = Analysis(Pointwise(CASES["gelu"].pattern.expr, SHAPE, "bfloat16"), ("x",), PLAIN_INIT, "")
    unknown_op = Analysis(pointwise(Call("lgamma", (X,))), ("x",), PLAIN_INIT, "")
    no_full_leaf = Analysis(pointwise(call("add", Weight("bias"), 1.0)), ("x",), PLAIN_INIT, "")
    row_epilogue = Analysis(reduce("sum", epilogue=call("add", Value(), Weight("bias"))), ("x",), PLAIN_INIT, "")
    index_epilogue = Analysis(reduce("argmax", epilogue=call("add", Value(), 1.0)), ("x",), PLAIN_INIT, "")
    for analysis in (bf16, unknown_op, no_full_leaf, row_epilogue, index_epilogue):
        assert not any(t.matches(analysis) for t in cpu.TEMPLATES), analysis


def test_rendered_source_reuses_the_task_init_and_hands_over_weights():
    analysis = CASES["layer_norm"].analysis()
    source = TEMPLATES["cpu.norm"].render(analysis, defaults(TEMPLATES["cpu.norm"], analysis))
    assert "class ModelNew(nn.Module):\n    def __init__(self, cols):" in source
    assert "nn.init.normal_(self.ln.bias)" in source
    assert "self.ln.weight.contiguous()" in source and "self.ln.bias.contiguous()" in source
    assert "lib = cpu.compile(SOURCE)" in source and "class Model(" not in source
