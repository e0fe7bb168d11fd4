"""The Triton matrix-product templates (triton.gemm, triton.gemv): rendered candidates compute what the
reference does under Triton's CPU interpreter, at the corners of their spaces, on shapes that are not
multiples of any block, batched, with bias, epilogue and residual, in fp32, bf16 and fp16; their kernels
compile for an H100 (sm_90) as a launch at a large shape would specialize them; and one passes the
real evaluator.

Cases are small tasks with hand-built Matmul Analyses, so the templates are tested apart from the
analysis. Triton decides when it is imported whether kernels are interpreted, so candidates run in a
child process: this file is also that child's script (`python test_expert_gemm.py interpret|compile`
reads a JSON list of jobs on stdin and prints one JSON list of outcomes).
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from child_jobs import run_child, serve
from interpreted_evaluation import quick_evaluator

from kernelwright.generate.expert.patterns import (
    Analysis,
    Call,
    Const,
    Input,
    Matmul,
    Value,
    Weight,
)
from kernelwright.generate.expert.templates import defaults, triton_gemm

X, V = Input(0), Value()
TEMPLATES = {t.name: t for t in triton_gemm.TEMPLATES}
IMPORTS = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F"
TASK = '''import torch
import torch.nn as nn
import torch.nn.functional as F

z, m, n, k = {z}, {m}, {n}, {k}

KERNELWRIGHT = {meta}


class Model(nn.Module):
    def __init__(self, z, n, k):
        super().__init__()
{init}

    def forward(self, {args}):
        return {body}


def get_inputs():
    return [{inputs}]


def get_init_inputs():
    return [z, n, k]
'''


def call(op: str, *args: Any) -> Call:
    return Call(op, tuple(Const(a) if isinstance(a, (int, float)) else a for a in args))


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[int, int, int, int], Matmul]  # (z, m, n, k) -> the pattern, in fp32
    body: str  # the reference forward's return expression
    init: str = "pass"  # __init__'s lines after super().__init__(), over z, n and k
    args: tuple[str, ...] = ("x",)
    inputs: str = "torch.randn(m, k)"
    dims: tuple[int, int, int, int] = (3, 37, 45, 50)  # z, m, n, k: no block size divides them
    precision: str | None = None  # the task's meta precision

    def analysis(self, dtype: str = "float32", dims: tuple[int, int, int, int] | None = None) -> Analysis:
        pattern = replace(self.make(*(dims or self.dims)), dtype=dtype)
        admitted = self.precision or {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[dtype]
        return Analysis(pattern, self.args, f"    def __init__(self, z, n, k):\n        super().__init__()\n"
                        f"{textwrap.indent(self.init, ' ' * 8)}\n", IMPORTS, precision=admitted)

    def source(self, dtype: str = "float32", dims: tuple[int, int, int, int] | None = None,
               variants: tuple[dict[str, int], ...] = ()) -> str:
        meta: dict[str, Any] = {"shape_variants": list(variants)}
        if dtype != "float32":
            meta["dtype"] = dtype
        if self.precision:
            meta["precision"] = self.precision
        z, m, n, k = dims or self.dims
        return TASK.format(z=z, m=m, n=n, k=k, meta=json.dumps(meta), init=textwrap.indent(self.init, " " * 8),
                           args=", ".join(self.args), body=self.body, inputs=self.inputs)


def linear(name: str, bias: bool = True, epilogue: Any = None) -> Callable[[int, int, int, int], Matmul]:
    """nn.Linear `name` over x [z, m, k] (its rows: z * m), as the analysis reads it."""
    return lambda z, m, n, k: Matmul(X, Weight(f"{name}.weight", "full"), True, False, (z, m, n), k, "float32",
                                     Weight(f"{name}.bias") if bias else None, epilogue)


# Every op of the epilogue table, over values of either sign (so each takes only finite, real values).
ALL_OPS = call("add", call("gelu", V), call("mul", call("gelu_tanh", V), call("silu", V)))
for op in ("sigmoid", "tanh", "softplus", "erf", "sin", "cos", "neg", "abs", "square", "relu"):
    ALL_OPS = call("add", ALL_OPS, call(op, V))
ALL_OPS = call("add", ALL_OPS, call("leaky_relu", V, 0.1))
ALL_OPS = call("add", ALL_OPS, call("clamp", V, -0.5, math.inf))
ALL_OPS = call("add", ALL_OPS, call("pow", V, 3.0))
ALL_OPS = call("add", ALL_OPS, call("pow", call("add", call("abs", V), 1.0), 1.5))
ALL_OPS = call("add", ALL_OPS, call("sqrt", call("add", call("abs", V), 1.0)))
ALL_OPS = call("sub", ALL_OPS, call("log", call("add", call("exp", call("neg", call("abs", V))), 1.0)))
ALL_OPS = call("add", ALL_OPS, call("rsqrt", call("add", call("square", V), 1.0)))
ALL_OPS = call("add", ALL_OPS, call("reciprocal", call("add", call("abs", V), 2.0)))
ALL_OPS = call("div", call("maximum", call("mul", ALL_OPS, Weight("g")), Weight("s", "scalar")), 4.0)
ALL_OPS = call("minimum", ALL_OPS, call("add", V, 3.0))
ALL_OPS_BODY = (
    "(lambda v: torch.minimum(torch.maximum((F.gelu(v) + F.gelu(v, approximate='tanh') * F.silu(v) + torch.sigmoid(v)"
    " + torch.tanh(v) + F.softplus(v) + torch.erf(v) + torch.sin(v) + torch.cos(v) - v + v.abs() + v * v"
    " + torch.relu(v)"
    " + F.leaky_relu(v, 0.1) + torch.clamp(v, min=-0.5) + v ** 3 + (v.abs() + 1) ** 1.5 + torch.sqrt(v.abs() + 1)"
    " - torch.log(torch.exp(-v.abs()) + 1) + torch.rsqrt(v * v + 1) + 1 / (v.abs() + 2)) * self.g, self.s) / 4.0,"
    " v + 3.0))(x @ self.w)")

CASES = {c.name: c for c in [
    Case("linear_bias_relu", linear("fc", epilogue=call("relu", V)), "torch.relu(self.fc(x))",
         "self.fc = nn.Linear(k, n)", inputs="torch.randn(z, m, k)"),
    Case("two_inputs", lambda z, m, n, k: Matmul(X, Input(1, "full"), False, False, (m, n), k, "float32"),
         "torch.matmul(a, b)", args=("a", "b"), inputs="torch.randn(m, k), torch.randn(k, n)", precision="tf32"),
    Case("bmm_weight", lambda z, m, n, k: Matmul(X, Weight("w", "full"), False, True, (z, m, n), k, "float32",
                                                 epilogue=call("mul", V, 0.5)),
         "torch.bmm(x, self.w) * 0.5", "self.w = nn.Parameter(torch.randn(z, k, n) * k ** -0.5)",
         inputs="torch.randn(z, m, k)"),
    Case("bmm_transposed", lambda z, m, n, k: Matmul(X, Input(1, "full"), True, True, (z, m, n), k, "float32"),
         "torch.bmm(x, y.transpose(1, 2))", args=("x", "y"), inputs="torch.randn(z, m, k), torch.randn(z, n, k)"),
    Case("residual", lambda z, m, n, k: Matmul(X, Weight("proj.weight", "full"), True, False, (m, n), k, "float32",
                                               epilogue=call("add", Input(1), V)),
         "r + self.proj(x)", "self.proj = nn.Linear(k, n, bias=False)", args=("x", "r"),
         inputs="torch.randn(m, k), torch.randn(m, n)"),
    Case("all_ops", lambda z, m, n, k: Matmul(X, Weight("w", "full"), False, False, (m, n), k, "float32",
                                              epilogue=ALL_OPS),
         ALL_OPS_BODY, "self.w = nn.Parameter(torch.randn(k, n) * k ** -0.5)\n"
                       "self.g = nn.Parameter(torch.rand(n) + 0.5)\nself.s = nn.Parameter(torch.full((1,), 0.25))"),
    # Thin: the GEMV's shape (M <= 16), a decoding step with a bias and a GELU.
    Case("thin", linear("head", epilogue=call("gelu", V)), "F.gelu(self.head(x))", "self.head = nn.Linear(k, n)",
         inputs="torch.randn(z, m, k)", dims=(1, 3, 45, 50)),
    # Long K, few tiles: SPLIT_K is offered (tiles = 1 at 32 x 32 blocks, 520 // (4 * 32) = 4 in fp32).
    Case("long_k", linear("fc", epilogue=call("add", call("gelu", V), Input(1))), "F.gelu(self.fc(x)) + r",
         "self.fc = nn.Linear(k, n)", args=("x", "r"), inputs="torch.randn(z, m, k), torch.randn(z, m, n)",
         dims=(1, 20, 24, 520)),
]}
DTYPES = {name: ("float32",) for name in CASES} | {
    "linear_bias_relu": ("float32", "bfloat16"), "two_inputs": ("float32", "float16"), "bmm_weight": ("bfloat16",),
    "residual": ("bfloat16",), "thin": ("float32", "bfloat16"), "long_k": ("float32", "bfloat16")}
# num_warps and num_stages do nothing in the interpreter: they stay at their defaults there (and are
# exercised by the sm_90 compile below).
INERT = ("num_warps", "num_stages")


def corners(template: Any, analysis: Analysis) -> list[dict[str, Any]]:
    """Corners of the space the interpreter tells apart: the defaults, every parameter at its last value
    (the smallest blocks, the most splits), and the defaults with one parameter at its last value."""
    space = template.space(analysis)
    first = {name: values[0] for name, values in space.items()}
    last = {name: values[0] if name in INERT else values[-1] for name, values in space.items()}
    points = [first, last, *({**first, name: values[-1]} for name, values in space.items() if name not in INERT)]
    return [dict(p) for p in dict.fromkeys(tuple(p.items()) for p in points)]


def jobs() -> list[dict[str, Any]]:
    found = []
    for name, case in CASES.items():
        for dtype in DTYPES[name]:
            analysis = case.analysis(dtype)
            for template in triton_gemm.TEMPLATES:
                if template.matches(analysis):
                    found += [{"case": name, "dtype": dtype, "template": template.name, "params": params}
                              for params in corners(template, analysis)]
    return found


# -- under the interpreter -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def outcomes() -> dict[str, list[str | None]]:
    """Every job, run in one interpreter process for the module (imports cost seconds); by case and dtype."""
    pytest.importorskip("triton")
    batch = jobs()
    found: dict[str, list[str | None]] = {}
    for job, outcome in zip(batch, run_child(__file__, "interpret", batch)):
        found.setdefault(f"{job['case']}-{job['dtype']}", []).append(outcome)
    return found


@pytest.mark.parametrize("key", [f"{name}-{dtype}" for name in CASES for dtype in DTYPES[name]])
def test_corners_compute_what_torch_does(outcomes: dict[str, list[str | None]], key: str) -> None:
    failures = [outcome for outcome in outcomes[key] if outcome is not None]
    assert outcomes[key] and not failures, "\n".join(failures)


def test_rendered_candidates_keep_the_static_rules() -> None:
    from kernelwright.evaluate.checks import check_candidate

    seen = set()
    for job in jobs():
        shape = (job["case"], job["dtype"], job["template"], job["params"].get("SPLIT_K", 1) > 1)
        if shape in seen:  # the other points differ in numbers only
            continue
        seen.add(shape)
        source = TEMPLATES[job["template"]].render(CASES[job["case"]].analysis(job["dtype"]), job["params"])
        report = check_candidate(source)
        assert report.ok and report.backends == {"triton"}, (job, report.summary())


# -- spaces and matching ------------------------------------------------------------------------------------

def test_precision_offers_only_what_the_task_admits_fastest_first() -> None:
    gemm = TEMPLATES["triton.gemm"]
    case = CASES["two_inputs"]

    def precisions(admitted: str | None) -> tuple[str, ...]:
        return gemm.space(replace(case.analysis(), precision=admitted))["precision"]

    assert precisions(None) == precisions("fp32") == ("ieee",)
    assert precisions("tf32") == ("tf32", "ieee")
    assert precisions("bf16") == ("bf16", "tf32", "ieee")
    assert "precision" not in gemm.space(case.analysis("bfloat16"))  # tensor cores natively
    source = gemm.render(case.analysis(), defaults(gemm, case.analysis()))
    assert 'input_precision="tf32"' in source
    ieee = gemm.render(case.analysis(), {**defaults(gemm, case.analysis()), "precision": "ieee"})
    assert 'input_precision="ieee"' in ieee


def test_defaults_follow_the_shape_and_split_k_is_offered_only_for_long_k_and_few_tiles() -> None:
    gemm, gemv = TEMPLATES["triton.gemm"], TEMPLATES["triton.gemv"]
    big = CASES["linear_bias_relu"].analysis("bfloat16", (2, 2048, 16384, 4096))
    assert defaults(gemm, big) == {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8,
                                   "num_stages": 3}
    assert defaults(gemm, CASES["long_k"].analysis())["SPLIT_K"] == 4
    assert "SPLIT_K" not in gemm.space(CASES["linear_bias_relu"].analysis())  # 50 is no long K
    lm_head = CASES["thin"].analysis("bfloat16", (1, 1, 256000, 3072))
    assert gemv.matches(lm_head) and defaults(gemv, lm_head)["BLOCK_M"] == 1
    assert not gemv.matches(big)


def test_what_the_templates_do_not_write_does_not_match() -> None:
    base = CASES["residual"].analysis()
    pattern = base.pattern
    refused = [
        replace(pattern, dtype="float64"),
        replace(pattern, epilogue=call("add", V, Input(1, "broadcast"))),  # a broadcast other than a row
        replace(pattern, epilogue=call("pow", V, Input(1))),  # a tensor exponent
        replace(pattern, epilogue=call("lgamma", V)),
        replace(pattern, epilogue=call("add", V, Input(5))),  # no such forward argument
    ]
    for bad in refused:
        assert not any(t.matches(replace(base, pattern=bad)) for t in triton_gemm.TEMPLATES), bad


def test_the_candidate_reuses_the_task_init_and_reads_b_in_place() -> None:
    gemm = TEMPLATES["triton.gemm"]
    analysis = CASES["linear_bias_relu"].analysis("bfloat16")
    source = gemm.render(analysis, defaults(gemm, analysis))
    assert "class ModelNew(nn.Module):\n    def __init__(self, z, n, k):" in source
    assert "self.fc = nn.Linear(k, n)" in source and "class Model(" not in source
    # nn.Linear's weight [N, K] is read through swapped strides, never copied or transposed.
    assert "kw_b = self.fc.weight\n" in source and "kw_b.stride(1), kw_b.stride(0)" in source
    assert "WIDEN=WIDEN_BF16" in source  # the interpreter's bf16 dot is worked around
    split = CASES["long_k"].analysis()
    two_pass = gemm.render(split, defaults(gemm, split))
    assert "def kw_gemm_split_sum(" in two_pass and "SPLIT_K=4" in two_pass


# -- compiled for an H100 -------------------------------------------------------------------------------

H100_SMEM = 232448  # bytes of shared memory one block may use on sm_90
COMPILED = [  # (case, dtype, (z, m, n, k), template): main shapes, divisible by 16 as large models' are
    ("linear_bias_relu", "bfloat16", (2, 2048, 16384, 4096), "triton.gemm"),
    ("all_ops", "float32", (1, 1024, 1024, 1024), "triton.gemm"),
    ("long_k", "float32", (1, 256, 256, 65536), "triton.gemm"),
    ("thin", "bfloat16", (1, 1, 256000, 3072), "triton.gemv"),
]


def test_kernels_compile_for_sm90_and_the_gemm_pipelines_its_loads() -> None:
    pytest.importorskip("triton")
    batch = [{"case": c, "dtype": d, "dims": dims, "template": t} for c, d, dims, t in COMPILED]
    results = run_child(__file__, "compile", batch)
    if results == "unavailable":
        pytest.skip("this Triton cannot compile for sm_90 here (no NVIDIA backend or ptxas)")
    for job, kernels in zip(batch, results):
        assert isinstance(kernels, list), f"{job}: {kernels}"
        assert kernels and all(shared <= H100_SMEM for _, shared, _ in kernels), (job, kernels)
        assert all(pipelined for name, _, pipelined in kernels if name == "kw_gemm"), (job, kernels)
    split = dict(zip([c for c, *_ in COMPILED], results))["long_k"]
    assert [name for name, *_ in split] == ["kw_gemm", "kw_gemm_split_sum"]


# -- through the evaluator -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from quick_evaluator(tmp_path_factory)


def test_the_default_candidate_passes_the_evaluator(evaluator: Any, tmp_path: Path) -> None:
    """bf16, so the worker's interpreter takes the widened dot; the variant changes rows only (the weights
    keep their shapes)."""
    from kernelwright.candidate import Candidate
    from kernelwright.evaluate.verdict import Status
    from kernelwright.task import load_task

    case, gemm = CASES["linear_bias_relu"], TEMPLATES["triton.gemm"]
    path = tmp_path / "linear_bias_relu.py"
    path.write_text(case.source("bfloat16", variants=({"z": 2, "m": 5},)))
    analysis = case.analysis("bfloat16")
    source = gemm.render(analysis, defaults(gemm, analysis))
    verdict = evaluator.evaluate(load_task(path), Candidate(source, "triton.gemm-linear_bias_relu"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
    assert verdict.candidate["backends"] == ["triton"]


# -- the child process --------------------------------------------------------------------------------------

def _interpret(job: dict[str, Any]) -> None:
    """The job's candidate against its reference, in this (interpreting) process, on the case's inputs."""
    import torch

    from kernelwright.evaluate.correctness import compare, tolerance_for

    case = CASES[job["case"]]
    dtype = getattr(torch, job["dtype"])
    task: dict[str, Any] = {}
    exec(case.source(job["dtype"]), task)
    candidate: dict[str, Any] = {}
    exec(TEMPLATES[job["template"]].render(case.analysis(job["dtype"]), job["params"]), candidate)
    torch.manual_seed(0)
    reference = task["Model"](*task["get_init_inputs"]()).to(dtype)
    new = candidate["ModelNew"](*task["get_init_inputs"]()).to(dtype)
    new.load_state_dict(reference.state_dict())
    inputs = [x.to(dtype) for x in task["get_inputs"]()]
    with torch.no_grad():
        expected, got = reference(*inputs), new(*inputs)
    # fp16 and bf16 references round each op's result; the candidate rounds once: their tolerances cover both.
    comparison = compare([got], [expected], tolerance_for(job["dtype"], case.precision, frozenset()))
    assert comparison.ok, comparison.message


def _compile(job: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """(kernel, shared memory bytes, loads pipelined?) for each launch of the job's default candidate, compiled
    for sm_90 with the specializations a launch at the job's shapes would get (read on the meta device)."""
    import importlib.util
    import tempfile

    import torch
    from sm90_launches import compile_for_sm90, record_launches

    case, dims = CASES[job["case"]], tuple(job["dims"])
    analysis = case.analysis(job["dtype"], dims)
    template = TEMPLATES[job["template"]]
    path = Path(tempfile.mkdtemp()) / "candidate.py"  # Triton reads a kernel's source from its file
    path.write_text(template.render(analysis, defaults(template, analysis)))
    spec = importlib.util.spec_from_file_location("candidate", path)
    candidate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(candidate)
    task: dict[str, Any] = {}
    exec(case.source(job["dtype"], dims), task)

    launches = record_launches(candidate, ("kw_gemm", "kw_gemv", "kw_gemm_split_sum"))
    dtype = getattr(torch, job["dtype"])
    with torch.device("meta"):
        model = candidate.ModelNew(*task["get_init_inputs"]()).to(dtype)
        inputs = [x.to(dtype) for x in task["get_inputs"]()]
    model(*inputs)
    found = []
    for launch in launches:
        compiled = compile_for_sm90(launch)
        found.append((launch[0].__name__, compiled.metadata.shared, "async_copy" in compiled.asm["ttgir"]))
    return found


if __name__ == "__main__":
    serve(sys.argv[1], {"compile": _compile, "interpret": _interpret})
