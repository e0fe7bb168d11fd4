"""Convolutions in the expert: the analysis (nn.Conv2d / F.conv2d and the elementwise ops after it -> Conv,
or a one-line refusal) and the Triton templates (triton.conv, triton.depthwise). Rendered candidates
compute what the reference does under Triton's CPU interpreter, at the corners of their spaces, on small
shapes that no block size divides (odd sizes, stride 2, padding, dilation, groups, depthwise), with bias,
batch norm, activations, residual and scalar epilogues, in fp32, bf16 and fp16; the suite's kernels
compile for an H100 (sm_90) as launches at the tasks' main shapes would specialize them.

Cases are small task files analysed by the real analysis, so a case checks the two together; the
suite's tasks check the analysis alone. Triton decides when it is imported whether kernels are
interpreted, so candidates run in a child process: this file is also that child's script
(`python test_expert_conv.py interpret|compile` reads a JSON list of jobs on stdin and prints one JSON
list of outcomes).
"""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import expert_tasks
import pytest
from child_jobs import run_child, serve

from kernelwright.generate.expert.patterns import Analysis, Call, Const, Conv, Input, Unsupported, Value, Weight
from kernelwright.generate.expert.templates import all_templates, defaults, triton_conv

ROOT = Path(__file__).parent.parent
BUILTIN = ROOT / "src" / "kernelwright" / "suites" / "builtin"
TEMPLATES = {t.name: t for t in triton_conv.TEMPLATES}
TASK = '''import torch
import torch.nn as nn
import torch.nn.functional as F

KERNELWRIGHT = {meta}


class Model(nn.Module):
    def __init__(self):
        super().__init__()
{init}

    def forward(self, {args}):
        return {body}


def get_inputs():
    return [{inputs}]


def get_init_inputs():
    return []
'''
# Batch norm with the statistics and affine of a trained network (the defaults would be an identity).
TRAINED_BN = """self.bn = nn.BatchNorm2d({c})
with torch.no_grad():
    self.bn.running_mean.normal_(0.0, 0.5)
    self.bn.running_var.uniform_(0.5, 2.0)
    self.bn.weight.uniform_(0.5, 1.5)
    self.bn.bias.normal_(0.0, 0.2)"""


@dataclass(frozen=True)
class Case:
    name: str
    init: str  # __init__'s lines after super().__init__()
    body: str  # the forward's return expression
    inputs: str
    dtypes: tuple[str, ...] = ("float32",)
    args: tuple[str, ...] = ("x",)

    def source(self, dtype: str) -> str:
        meta = {"dtype": dtype} if dtype != "float32" else {}
        return TASK.format(meta=json.dumps(meta), init=textwrap.indent(self.init, " " * 8), args=", ".join(self.args),
                           body=self.body, inputs=self.inputs)

    def path(self, dtype: str) -> Path:
        """The case's task file (in a folder of this process's), written once."""
        path = _folder() / f"conv_{self.name}_{dtype}.py"
        if not path.exists():
            path.write_text(self.source(dtype))
        return path

    def analysis(self, dtype: str) -> Analysis:
        return analysis_of(self.path(dtype))


@cache
def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="kw-conv-cases-"))


analysis_of = cache(expert_tasks.analysis_of)  # each case's task is analyzed once

CASES = {c.name: c for c in [
    # A 3 x 3 filter with padding over 5 channels: "flat" by default, "taps" at a corner.
    Case("same_3x3", "self.conv = nn.Conv2d(5, 7, 3, padding=1, bias=False)", "self.conv(x)",
         "torch.randn(2, 5, 9, 11)", ("float32", "bfloat16")),
    # Functional, stride 2, a bias and a ReLU.
    Case("strided_bias_relu", "self.w = nn.Parameter(torch.randn(10, 6, 3, 3) * 0.2)\n"
                              "self.b = nn.Parameter(torch.randn(10))",
         "torch.relu(F.conv2d(x, self.w, self.b, stride=2, padding=1))", "torch.randn(2, 6, 11, 12)"),
    # The ResNet stem in small: 3 channels, 7 x 7 stride 2, batch norm in eval, ReLU.
    Case("stem_bn_relu", "self.conv = nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)\n"
                         + TRAINED_BN.format(c=8) + "\nself.relu = nn.ReLU(inplace=True)",
         "self.relu(self.bn(self.conv(x)))", "torch.randn(2, 3, 12, 10)", ("float32", "bfloat16")),
    # 1 x 1, stride 1, no padding: the plain GEMM, with a bias and a full-shape residual.
    Case("pointwise_residual", "self.conv = nn.Conv2d(8, 12, 1)", "self.conv(x) + r",
         "torch.randn(2, 8, 7, 9), torch.randn(2, 12, 7, 9)", ("float32", "bfloat16"), ("x", "r")),
    # 1 x 1 with stride 2 is no plain GEMM: one tap, strided.
    Case("pointwise_strided", "self.conv = nn.Conv2d(4, 9, 1, stride=2, bias=False)", "self.conv(x)",
         "torch.randn(2, 4, 9, 7)"),
    # Two groups, dilation 2, and a per-channel scale parameter [K, 1, 1].
    Case("grouped_dilated", "self.conv = nn.Conv2d(8, 6, 3, padding=2, dilation=2, groups=2)\n"
                            "self.scale = nn.Parameter(torch.rand(6, 1, 1) + 0.5)",
         "self.conv(x) * self.scale", "torch.randn(2, 8, 10, 9)", ("float32", "float16")),
    # Depthwise, stride 2, a bias and ReLU6.
    Case("depthwise_relu6", "self.conv = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6)", "F.relu6(self.conv(x))",
         "torch.randn(2, 6, 11, 9)", ("float32", "bfloat16")),
    # Depthwise 5 x 5, batch norm, and a scalar parameter.
    Case("depthwise_bn_scalar", "self.conv = nn.Conv2d(7, 7, 5, padding=2, groups=7, bias=False)\n"
                                + TRAINED_BN.format(c=7) + "\nself.shift = nn.Parameter(torch.full((1,), 0.25))",
         "self.bn(self.conv(x)) + self.shift", "torch.randn(2, 7, 8, 12)"),
]}
# The suite's tasks as they are (their own __init__, trained batch norm included) at small shapes, through
# their shape globals, with their default candidates.
SUITE_SHAPES = {
    "conv_resnet50_3x3": {"batch": 2, "channels": 20, "height": 9, "width": 7},
    "conv_pointwise_1x1": {"batch": 2, "in_channels": 20, "out_channels": 36, "height": 7, "width": 9},
    "conv_depthwise_mobilenetv2": {"batch": 2, "channels": 10, "height": 11, "width": 9},
    "conv_bn_relu_stem": {"batch": 2, "height": 15, "width": 13},
}
# num_warps and num_stages do nothing in the interpreter: they stay at their defaults there (and are
# exercised by the sm_90 compile below).
INERT = ("num_warps", "num_stages")
# Kept at its default in the corner of smallest blocks: the taps order with 16-wide blocks walks a 7 x 7
# filter in 49 steps per program, seconds in the interpreter; the other order is a corner of its own.
SLOW = ("loop",)


def corners(template: Any, analysis: Analysis) -> list[dict[str, Any]]:
    """The defaults, every parameter at its last value, and the defaults with one parameter at its last."""
    space = template.space(analysis)
    first = {name: values[0] for name, values in space.items()}
    last = {name: values[0] if name in INERT + SLOW else values[-1] for name, values in space.items()}
    points = [first, last, *({**first, name: values[-1]} for name, values in space.items() if name not in INERT)]
    return [dict(p) for p in dict.fromkeys(tuple(p.items()) for p in points)]


@cache
def jobs() -> tuple[dict[str, Any], ...]:
    found = []
    for name, case in CASES.items():
        for dtype in case.dtypes:
            analysis = case.analysis(dtype)
            for template in triton_conv.TEMPLATES:
                if template.matches(analysis):
                    found += [{"case": name, "dtype": dtype, "template": template.name, "params": params,
                               "path": str(case.path(dtype))} for params in corners(template, analysis)]
    for name, shape in SUITE_SHAPES.items():
        analysis = analysis_of(BUILTIN / f"{name}.py")
        template = next(t for t in triton_conv.TEMPLATES if t.matches(analysis))
        found.append({"case": name, "dtype": "float32", "template": template.name,
                      "params": defaults(template, analysis), "path": str(BUILTIN / f"{name}.py"), "globals": shape})
    return tuple(found)


# -- the analysis ---------------------------------------------------------------------------------------

def suite(name: str) -> Conv:
    pattern = analysis_of(BUILTIN / f"{name}.py").pattern
    assert isinstance(pattern, Conv)
    return pattern


def test_the_suite_s_convolutions_are_conv_patterns() -> None:
    assert suite("conv_resnet50_3x3") == Conv(
        Input(0), Weight("conv.weight", "full"), None, (1, 1), (1, 1), (1, 1), 1, (512, 64, 56, 56),
        (512, 64, 56, 56), (3, 3), "float32")
    pointwise = suite("conv_pointwise_1x1")
    assert (pointwise.kernel_size, pointwise.padding, pointwise.shape) == ((1, 1), (0, 0), (512, 256, 56, 56))
    assert (pointwise.m, pointwise.n, pointwise.k) == (512 * 56 * 56, 256, 64)
    depthwise = suite("conv_depthwise_mobilenetv2")
    assert depthwise.groups == 144 and depthwise.depthwise and depthwise.k == 9
    stem = suite("conv_bn_relu_stem")
    assert (stem.stride, stem.padding, stem.in_shape, stem.shape) == ((2, 2), (3, 3), (256, 3, 224, 224),
                                                                      (256, 64, 112, 112))
    channel = {name: Weight(f"bn1.{name}", "broadcast", (1, 2)) for name in ("running_mean", "running_var", "weight",
                                                                           "bias")}
    normalized = Call("div", (Call("sub", (Value(), channel["running_mean"])),
                              Call("sqrt", (Call("add", (channel["running_var"], Const(1e-5))),))))
    bn = Call("add", (Call("mul", (normalized, channel["weight"])), channel["bias"]))
    assert stem.epilogue == Call("relu", (bn,)) and stem.bias is None


def write_task(forward: str, init: str = "pass", inputs: str = "torch.randn(2, 4, 9, 9)", args: str = "x") -> Path:
    source = TASK.format(meta="{}", init=textwrap.indent(init, " " * 8), args=args, body=forward, inputs=inputs)
    path = Path(tempfile.mkdtemp(prefix="kw-conv-task-")) / "task.py"
    path.write_text(source)
    return path


def test_functional_conv_with_bias_and_same_padding() -> None:
    init = "self.w = nn.Parameter(torch.randn(6, 4, 5, 3))\nself.b = nn.Parameter(torch.randn(6))"
    pattern = analysis_of(write_task("F.conv2d(x, self.w, self.b, padding='same', dilation=(1, 2))", init)).pattern
    assert pattern == Conv(Input(0), Weight("w", "full"), Weight("b", "broadcast", (1, 2)), (1, 1), (2, 2), (1, 2), 1,
                           (2, 6, 9, 9), (2, 4, 9, 9), (5, 3), "float32")


@pytest.mark.parametrize(("forward", "init", "refusal"), [
    ("self.conv(x)", "self.conv = nn.Conv2d(4, 4, 3, padding=1, padding_mode='reflect')",
     r"conv2d \(conv\) with padding_mode='reflect'; the expert pads with zeros only at task.py:\d+"),
    ("self.fc(self.conv(x))", "self.conv = nn.Conv2d(4, 4, 3, padding=1)\nself.fc = nn.Linear(9, 5)",
     r"linear \(fc\) with a convolution; the expert fuses elementwise ops into one convolution per kernel"),
    ("self.b(self.a(x))", "self.a = nn.Conv2d(4, 4, 1)\nself.b = nn.Conv2d(4, 4, 1)",
     r"conv2d \(b\) with a convolution"),
    ("self.conv(x).flatten(2)", "self.conv = nn.Conv2d(4, 4, 3)", r"flatten is not an op the expert writes"),
    ("self.conv(x) + self.col", "self.conv = nn.Conv2d(4, 4, 3, padding=1)\nself.col = nn.Parameter(torch.zeros(9))",
     r"col broadcasts over the convolution's output \(2, 4, 9, 9\) other than per channel"),
    ("F.conv2d(x, self.w, padding='same')", "self.w = nn.Parameter(torch.randn(4, 4, 2, 2))",
     r"conv2d with stride \(1, 1\), padding 'same', dilation \(1, 1\); the expert writes the same zero padding"),
    ("self.conv(torch.relu(x))", "self.conv = nn.Conv2d(4, 4, 3)", r"conv2d of a tensor computed by relu"),
])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's, when tracing
def test_what_the_expert_does_not_write_is_refused_in_one_line(forward: str, init: str, refusal: str) -> None:
    with pytest.raises(Unsupported, match=refusal) as refused:
        analysis_of(write_task(forward, init))
    assert "\n" not in str(refused.value)


def test_an_unbatched_input_is_refused() -> None:
    with pytest.raises(Unsupported, match=r"conv2d of a 3-D input"):
        analysis_of(write_task("self.conv(x)", "self.conv = nn.Conv2d(4, 4, 3)", inputs="torch.randn(4, 9, 9)"))


# -- spaces and matching ----------------------------------------------------------------------------------

def test_each_suite_task_gets_its_template_and_loop() -> None:
    analyses = {name: analysis_of(BUILTIN / f"{name}.py") for name in (
        "conv_resnet50_3x3", "conv_pointwise_1x1", "conv_depthwise_mobilenetv2", "conv_bn_relu_stem")}
    matched = {name: [t.name for t in all_templates() if t.matches(a)] for name, a in analyses.items()}
    assert matched == {"conv_resnet50_3x3": ["triton.conv"], "conv_pointwise_1x1": ["triton.conv"],
                       "conv_depthwise_mobilenetv2": ["triton.depthwise"], "conv_bn_relu_stem": ["triton.conv"]}
    conv = TEMPLATES["triton.conv"]
    assert defaults(conv, analyses["conv_resnet50_3x3"]) == {
        "BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 4, "num_stages": 3, "loop": "taps",
        "precision": "tf32"}
    assert defaults(conv, analyses["conv_bn_relu_stem"])["loop"] == "flat"  # 3 channels: slices across taps
    assert "loop" not in conv.space(analyses["conv_pointwise_1x1"])  # the plain GEMM
    # 56 x 56 planes: tiles of 4 rows of 64 columns on one warp.
    assert defaults(TEMPLATES["triton.depthwise"], analyses["conv_depthwise_mobilenetv2"]) == {
        "BLOCK_Q": 64, "BLOCK_P": 4, "num_warps": 1}


def test_precision_follows_the_policy() -> None:
    conv, analysis = TEMPLATES["triton.conv"], CASES["same_3x3"].analysis("float32")
    # PyTorch's own fp32 convolutions run on TF32 tensor cores, which the evaluator admits: so does the analysis.
    assert analysis.precision == "tf32" and conv.space(analysis)["precision"] == ("tf32", "ieee")
    assert conv.space(replace(analysis, precision="fp32"))["precision"] == ("ieee",)
    assert conv.space(replace(analysis, precision="tf32"))["precision"] == ("tf32", "ieee")
    tf32 = conv.render(replace(analysis, precision="tf32"), defaults(conv, replace(analysis, precision="tf32")))
    assert 'input_precision="tf32"' in tf32
    bf16 = CASES["same_3x3"].analysis("bfloat16")
    assert "precision" not in conv.space(bf16)
    assert "WIDEN=WIDEN_BF16" in conv.render(bf16, defaults(conv, bf16))  # the interpreter's bf16 dot, worked around


def test_what_the_templates_do_not_write_does_not_match() -> None:
    base = CASES["strided_bias_relu"].analysis("float32")
    refused = [replace(base.pattern, dtype="float64"), replace(base.pattern, epilogue=Call("lgamma", (Value(),))),
               replace(base.pattern, epilogue=Call("add", (Value(), Input(3, "full")))),  # no such forward argument
               replace(base.pattern, epilogue=Call("add", (Value(), Input(0, "row"))))]
    for bad in refused:
        assert not any(t.matches(replace(base, pattern=bad)) for t in triton_conv.TEMPLATES), bad


def test_rendered_candidates_keep_the_static_rules() -> None:
    from kernelwright.evaluate.checks import check_candidate

    for job in jobs():
        source = TEMPLATES[job["template"]].render(analysis_of(Path(job["path"])), job["params"])
        report = check_candidate(source)
        assert report.ok and report.backends == {"triton"}, (job, report.summary())


# -- under the interpreter -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def outcomes() -> dict[str, list[str | None]]:
    """Every job, run in one interpreter process for the module (imports cost seconds); by case and dtype."""
    pytest.importorskip("triton")
    batch = list(jobs())
    found: dict[str, list[str | None]] = {}
    for job, outcome in zip(batch, run_child(__file__, "interpret", batch)):
        found.setdefault(f"{job['case']}-{job['dtype']}", []).append(outcome)
    return found


@pytest.mark.parametrize("key", [f"{name}-{dtype}" for name, case in CASES.items() for dtype in case.dtypes]
                         + [f"{name}-float32" for name in SUITE_SHAPES])
def test_corners_compute_what_torch_does(outcomes: dict[str, list[str | None]], key: str) -> None:
    failures = [outcome for outcome in outcomes[key] if outcome is not None]
    assert outcomes[key] and not failures, "\n".join(failures)


# -- compiled for an H100 -------------------------------------------------------------------------------

H100_SMEM = 232448  # bytes of shared memory one block may use on sm_90


def test_the_suite_s_kernels_compile_for_sm90_and_pipeline_their_loads() -> None:
    pytest.importorskip("triton")
    names = ("conv_resnet50_3x3", "conv_pointwise_1x1", "conv_depthwise_mobilenetv2", "conv_bn_relu_stem")
    results = run_child(__file__, "compile", [{"path": str(BUILTIN / f"{name}.py")} for name in names])
    if results == "unavailable":
        pytest.skip("this Triton cannot compile for sm_90 here (no NVIDIA backend or ptxas)")
    for name, kernels in zip(names, results):
        assert isinstance(kernels, list) and len(kernels) == 1, f"{name}: {kernels}"
        (kernel, shared, pipelined), = kernels
        assert shared <= H100_SMEM, (name, kernels)
        assert pipelined or kernel == "kw_depthwise", (name, kernels)  # the GEMM's loads are asynchronous copies


# -- the child process --------------------------------------------------------------------------------------

def _load(path: Path) -> Any:
    """A Python file as a module of its own (Triton reads jit functions' source from their file)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"kw_{path.parent.name}_{path.stem}".replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _candidate(template: Any, analysis: Analysis, params: dict[str, Any]) -> Any:
    path = Path(tempfile.mkdtemp(prefix="kw-conv-candidate-")) / "candidate.py"
    path.write_text(template.render(analysis, params))
    return _load(path)


def _interpret(job: dict[str, Any]) -> None:
    """The job's candidate against its reference, in this (interpreting) process, as the evaluator runs
    them: in eval mode, model and inputs in the job's dtype."""
    import torch

    from kernelwright.evaluate.correctness import compare, tolerance_for
    from kernelwright.evaluate.inputs import variant_globals

    dtype = getattr(torch, job["dtype"])
    task = _load(Path(job["path"]))
    candidate = _candidate(TEMPLATES[job["template"]], analysis_of(Path(job["path"])), job["params"])
    with variant_globals(task, job.get("globals", {})):
        torch.manual_seed(0)
        init = task.get_init_inputs()
        reference = task.Model(*init).to(dtype).eval()
        inputs = [x.to(dtype) for x in task.get_inputs()]
    new = candidate.ModelNew(*init).to(dtype).eval()
    new.load_state_dict(reference.state_dict())
    with torch.no_grad():
        expected, got = reference(*inputs), new(*inputs)
    # fp16 and bf16 references round each op's result; the candidate rounds once: their tolerances cover both.
    comparison = compare([got], [expected], tolerance_for(job["dtype"], None, frozenset()))
    assert comparison.ok, comparison.message


def _compile(job: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """(kernel, shared memory bytes, loads pipelined?) for each launch of the task's default candidate,
    compiled for sm_90 with the specializations a launch at the task's main shapes would get (read on the
    meta device)."""
    import torch
    from sm90_launches import compile_for_sm90, record_launches

    analysis = analysis_of(Path(job["path"]))
    template = next(t for t in triton_conv.TEMPLATES if t.matches(analysis))
    candidate = _candidate(template, analysis, defaults(template, analysis))
    task = _load(Path(job["path"]))
    launches = record_launches(candidate, ("kw_conv", "kw_depthwise"))
    with torch.device("meta"):
        candidate.ModelNew(*task.get_init_inputs())(*task.get_inputs())
    found = []
    for launch in launches:
        compiled = compile_for_sm90(launch)
        found.append((launch[0].__name__, compiled.metadata.shared, "async_copy" in compiled.asm["ttgir"]))
    return found


if __name__ == "__main__":
    serve(sys.argv[1], {"compile": _compile, "interpret": _interpret})
