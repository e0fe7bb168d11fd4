"""The static checker: sound candidates pass untouched, every cheat is named by rule and line."""

from __future__ import annotations

import textwrap

import pytest

from kernelwright.backends import CPU, CUDA_INLINE, CUDA_NVRTC, TRITON
from kernelwright.evaluate.checks import StaticReport, check_candidate
from kernelwright.evaluate.rules import extern_c_names

# --- Sound candidates, one per backend: they must pass with no violation at all.

TRITON_ADD = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x + y, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, y):
        assert x.is_contiguous() and x.shape == y.shape
        out = torch.empty_like(x)
        n = x.numel()
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK"]),)
        add_kernel[grid](x, y, out, n, BLOCK=1024)
        return out
'''

NVRTC_SCALE = '''
import torch
import torch.nn as nn
from kernelwright.backends import cuda

SRC = r"""
extern "C" __global__ void __launch_bounds__(256) scale(const float* x, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 2.0f * x[i];
}
"""
mod = cuda.compile(SRC)


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        blocks = (n + 255) // 256
        mod.scale[(blocks,), (256,)](x, out, n)
        return out.view(x.shape)
'''

LOAD_INLINE_ADD = '''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

elementwise_add_source = """
#include <torch/extension.h>
#include <cuda_runtime.h>

__global__ void elementwise_add_kernel(const float* a, const float* b, float* out, int size) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < size) {
        out[idx] = a[idx] + b[idx];
    }
}

torch::Tensor elementwise_add_cuda(torch::Tensor a, torch::Tensor b) {
    auto size = a.numel();
    auto out = torch::zeros_like(a);
    const int block_size = 256;
    const int num_blocks = (size + block_size - 1) / block_size;
    elementwise_add_kernel<<<num_blocks, block_size>>>(a.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(), size);
    return out;
}
"""

elementwise_add_cpp_source = "torch::Tensor elementwise_add_cuda(torch::Tensor a, torch::Tensor b);"

elementwise_add = load_inline(
    name="elementwise_add",
    cpp_sources=elementwise_add_cpp_source,
    cuda_sources=elementwise_add_source,
    functions=["elementwise_add_cuda"],
    verbose=True,
    extra_cflags=[""],
    extra_ldflags=[""],
)


class ModelNew(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.elementwise_add = elementwise_add

    def forward(self, a, b):
        return self.elementwise_add.elementwise_add_cuda(a, b)
'''

CPU_RELU = '''
import torch
import torch.nn as nn
from kernelwright.backends import cpu

SRC = r"""
#include <cstddef>
extern "C" void relu(const float* x, float* out, long n) {
    for (long i = 0; i < n; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
"""
lib = cpu.compile(SRC)


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        lib.relu(x, out, x.numel())
        return out
'''

CONV_WEIGHT = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.autotune(configs=[triton.Config({"BLOCK": 256})], key=["n"])
@triton.jit
def scale_kernel(x_ptr, w_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    w = tl.load(w_ptr)
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) * w, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.block = 256

    def forward(self, x):
        w = self.conv.weight.contiguous()
        out = torch.empty_like(x)
        n = x.numel()
        scale_kernel[(triton.cdiv(n, self.block),)](x, w, out, n)
        return out
'''


def check(source: str, **kwargs) -> StaticReport:
    return check_candidate(textwrap.dedent(source), **kwargs)


def line_of(source: str, marker: str) -> int:
    """1-based line of the first line containing `marker` (sources are dedented first)."""
    lines = textwrap.dedent(source).splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text)


def found(report: StaticReport) -> set[tuple[str, int]]:
    return {(v.rule, v.line) for v in report.violations}


@pytest.mark.parametrize(
    ("source", "backends", "kernels"),
    [
        (TRITON_ADD, {TRITON}, {"add_kernel"}),
        (NVRTC_SCALE, {CUDA_NVRTC}, {"scale"}),
        (LOAD_INLINE_ADD, {CUDA_INLINE}, {"elementwise_add_kernel"}),
        (CPU_RELU, {CPU}, {"relu"}),
        (CONV_WEIGHT, {TRITON}, {"scale_kernel"}),
    ],
    ids=["triton", "nvrtc", "load_inline", "cpu", "conv_weight"],
)
def test_sound_candidates_pass(source: str, backends: set[str], kernels: set[str]) -> None:
    report = check(source)
    assert report.violations == (), report.summary()
    assert report.ok and report.summary() == "ok"
    assert report.backends == backends
    assert report.kernel_names == kernels


# --- Cheats placed into an otherwise sound Triton candidate.

def triton_with(forward: str, init: str = "pass", header: str = "") -> str:
    """TRITON_ADD with its __init__ body, forward body and extra imports replaced."""
    body = textwrap.indent(textwrap.dedent(forward).strip("\n"), " " * 8)
    init_body = textwrap.indent(textwrap.dedent(init).strip("\n"), " " * 8)
    source = textwrap.dedent(TRITON_ADD)
    head, _, _ = source.partition("class ModelNew")
    return (header + head + "class ModelNew(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            + init_body + "\n\n    def forward(self, x, y):\n" + body + "\n")


LAUNCH = """
out = torch.empty_like(x)
add_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
"""


@pytest.mark.parametrize(
    ("forward", "rule", "marker"),
    [
        (LAUNCH + "return torch.matmul(out, y)  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return out.half()  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return x.to(torch.float16)  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return out.sum()  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "out.copy_(x)  # HERE\nreturn out", "torch-compute", "# HERE"),
        ("out = x + y  # HERE\n" + LAUNCH + "return out", "torch-compute", "# HERE"),
        (LAUNCH + "return -out  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "out += 1  # HERE\nreturn out", "torch-compute", "# HERE"),
        (LAUNCH + "z = out\nreturn z @ y  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "out[0] = 1.0  # HERE\nreturn out", "torch-compute", "# HERE"),
        (LAUNCH + "return out[x > 0]  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return sum([out, y])  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "f = out.exp  # HERE\nreturn f()", "torch-compute", "# HERE"),
        (LAUNCH + "return F.relu(out)  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return torch.ops.aten.relu(out)  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return mm(out, y)  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return getattr(torch, 'relu')(out)  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return np.asarray(out).sum()  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return torch.Tensor.add(out, y)  # HERE", "torch-compute", "# HERE"),
        (LAUNCH + "return self.helper(out)\n\ndef helper(self, t):\n    return t.exp()  # HERE",
         "torch-compute", "# HERE"),
    ],
)
def test_torch_compute_in_forward(forward: str, rule: str, marker: str) -> None:
    header = ("import numpy as np\nimport torch.nn.functional as F\nfrom torch import matmul as mm\n")
    source = triton_with(forward, header=header)
    assert (rule, line_of(source, marker)) in found(check(source))


def test_torch_compute_at_module_level_and_in_helpers() -> None:
    source = TRITON_ADD + "\nW = torch.randn(4, 4)  # module\n\ndef _helper(a, b):\n    return a * b  # helper\n"
    assert {("torch-compute", line_of(source, "# module")),
            ("torch-compute", line_of(source, "# helper"))} <= found(check(source))


def test_torch_submodule_call_is_compute_but_its_weight_is_not() -> None:
    source = triton_with(LAUNCH + "return self.linear(out)  # HERE", init="self.linear = nn.Linear(4, 4)")
    assert found(check(source)) == {("torch-compute", line_of(source, "# HERE"))}
    allowed = check(source, allowed_ops=["nn.Linear"])
    assert allowed.ok, allowed.summary()
    weight = triton_with(LAUNCH + "w = self.linear.weight\nb = self.linear.bias.view(-1)\nreturn out",
                         init="self.linear = nn.Linear(4, 4)")
    assert check(weight).ok


def test_torch_compute_hidden_in_init() -> None:
    value = triton_with(LAUNCH + "return self.op(out, y)", init="self.op = torch.matmul  # HERE")
    assert ("torch-compute", line_of(value, "# HERE")) in found(check(value))
    closure = triton_with(LAUNCH + "return self.op(out, y)", init="self.op = lambda a, b: a @ b  # HERE")
    assert ("torch-compute", line_of(closure, "# HERE")) in found(check(closure))


def test_init_may_build_weights_with_torch() -> None:
    source = triton_with(LAUNCH + "return out", init="""
        self.weight = nn.Parameter(torch.randn(4, 4) * 0.02)
        nn.init.kaiming_uniform_(self.weight)
        self.register_buffer("scale", torch.ones(4))
    """)
    assert check(source).ok


def test_inheriting_a_torch_module_is_compute() -> None:
    source = triton_with(LAUNCH + "return out").replace("class ModelNew(nn.Module)", "class ModelNew(nn.Linear)")
    assert ("torch-compute", line_of(source, "class ModelNew")) in found(check(source))


def test_allowed_ops_extend_the_allowlist() -> None:
    source = triton_with(LAUNCH + "return F.linear(out, y)", header="import torch.nn.functional as F\n")
    assert not check(source).ok
    assert check(source, allowed_ops=["linear"]).ok
    assert check(source, allowed_ops=["torch.nn.functional.linear"]).ok
    plus = triton_with(LAUNCH + "return out + y")
    assert not check(plus).ok
    assert check(plus, allowed_ops=["add"]).ok
    assert check(plus, allowed_ops=["+"]).ok


def test_views_shapes_and_device_moves_are_allowed() -> None:
    source = triton_with("""
        b, n = x.shape
        x2 = x.reshape(b, -1).contiguous().to(x.device)
        rows = x2[0:1, :]
        half = x.size(0) // 2
        out = torch.empty((b, n), dtype=x.dtype, device=x.device)
        add_kernel[(triton.cdiv(out.numel(), 1024),)](x2, rows, out, half * 2 + x.stride(0), BLOCK=1024)
        return out.view(b, n).transpose(0, 1).t()
    """)
    assert check(source).ok, check(source).summary()


# --- One cheat per remaining rule.

def test_syntax_error_names_its_line() -> None:
    report = check_candidate("import torch\n\ndef forward(:\n    pass\n")
    assert found(report) == {("syntax", 3)}
    assert report.summary().startswith("line 3 [syntax]")


def test_no_model_new() -> None:
    source = TRITON_ADD.replace("class ModelNew", "class Candidate")
    assert ("no-model-new", 1) in found(check(source))


def test_try_except_fallback() -> None:
    source = triton_with("""
        out = torch.empty_like(x)
        try:  # HERE
            add_kernel[(1,)](x, y, out, x.numel(), BLOCK=1024)
        except Exception:
            return torch.relu(x)  # FALLBACK
        return out
    """)
    assert {("try-except", line_of(source, "# HERE")),
            ("torch-compute", line_of(source, "# FALLBACK"))} <= found(check(source))


def test_try_finally_is_fine_but_suppress_is_not() -> None:
    assert check(triton_with("try:\n" + textwrap.indent(LAUNCH, "    ") + "finally:\n    pass\nreturn out")).ok
    source = triton_with("with contextlib.suppress(Exception):  # HERE\n" + textwrap.indent(LAUNCH, "    ")
                         + "return out", header="import contextlib\n")
    assert ("try-except", line_of(source, "# HERE")) in found(check(source))


@pytest.mark.parametrize(
    ("edit", "marker"),
    [
        (lambda s: s.replace("class ModelNew(nn.Module):", "class ModelNew(Model):  # HERE"), "# HERE"),
        (lambda s: "from reference import Model  # HERE\n" + s, "# HERE"),
        (lambda s: "import task_module  # HERE\n" + s, "# HERE"),
        (lambda s: "from . import helpers  # HERE\n" + s, "# HERE"),
        (lambda s: s + "\nclass Model(nn.Module):  # HERE\n    pass\n", "# HERE"),
    ],
    ids=["subclass", "import-model", "task-module", "relative", "define-model"],
)
def test_reference_model(edit, marker: str) -> None:
    source = edit(textwrap.dedent(TRITON_ADD))
    assert ("reference-model", line_of(source, marker)) in found(check(source))


@pytest.mark.parametrize(
    ("forward", "header", "rule"),
    [
        ("s = torch.cuda.Stream()  # HERE", "", "streams-events"),
        ("torch.cuda.synchronize()  # HERE", "", "streams-events"),
        ("e = torch.cuda.Event(enable_timing=True)  # HERE", "", "streams-events"),
        ("torch.cuda.synchronize = lambda: None  # HERE", "", "timing-patch"),
        ("time.perf_counter = lambda: 0.0  # HERE", "import time\n", "timing-patch"),
        ("setattr(torch.cuda, 'synchronize', None)  # HERE", "", "timing-patch"),
        ("os.system('nvidia-smi')  # HERE", "import os\n", "threads-processes"),
        ("sys._getframe(1).f_locals  # HERE", "import sys\n", "introspection"),
        ("f = getattr(torch, 'mat' + 'mul')  # HERE", "", "introspection"),
        ("t = __import__('torch')  # HERE", "", "introspection"),
        ("r = eval('1 + 1')  # HERE", "", "introspection"),
        ("c = x.__class__  # HERE", "", "introspection"),
        ("data = open('/tmp/x').read()  # HERE", "", "io"),
        ("torch.save(x, 'x.pt')  # HERE", "", "io"),
        ("f = torch.compile(lambda t: t)  # HERE", "", "tensor-subclass"),
        ("ok = torch._C._get_tracing_state()  # HERE", "", "tensor-subclass"),
        ("self.cache = x  # HERE", "", "global-state"),
        ("_CACHE['out'] = x  # HERE", "_CACHE = {}\n", "global-state"),
        ("self.memo.append(x)  # HERE", "", "global-state"),
    ],
)
def test_cheats_in_forward(forward: str, header: str, rule: str) -> None:
    source = triton_with(forward + "\n" + LAUNCH + "return out", header=header)
    assert (rule, line_of(source, "# HERE")) in found(check(source)), check(source).violations


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("import threading", "threads-processes"),
        ("from concurrent.futures import ThreadPoolExecutor", "threads-processes"),
        ("import subprocess", "threads-processes"),
        ("import gc", "introspection"),
        ("import ctypes", "introspection"),
        ("import inspect", "introspection"),
        ("import timeit", "timing-patch"),
        ("from triton.testing import do_bench", "timing-patch"),
        ("import torch.profiler", "timing-patch"),
        ("from kernelwright.evaluate import timing", "timing-patch"),
        ("from kernelwright.backends import launches", "timing-patch"),
        ("import pickle", "io"),
        ("from pathlib import Path", "io"),
        ("import torch._dynamo", "tensor-subclass"),
        ("from functools import lru_cache", "global-state"),
        ("from torch.cuda import Event", "streams-events"),
    ],
)
def test_banned_imports(line: str, rule: str) -> None:
    source = line + "  # HERE\n" + textwrap.dedent(TRITON_ADD)
    assert (rule, 1) in found(check(source))


def test_tensor_subclass() -> None:
    source = TRITON_ADD + "\n\nclass Sneaky(torch.Tensor):  # HERE\n    pass\n"
    assert ("tensor-subclass", line_of(source, "# HERE")) in found(check(source))
    dispatch = TRITON_ADD + "\n\nclass Mode:\n    def __torch_function__(self, *args):  # HERE\n        pass\n"
    assert ("tensor-subclass", line_of(dispatch, "# HERE")) in found(check(dispatch))


def test_kernel_defined_but_never_launched() -> None:
    source = triton_with("return torch.empty_like(x)")
    assert found(check(source)) == {("no-custom-kernel", line_of(source, "class ModelNew"))}


def test_global_statement_and_cache_decorator() -> None:
    source = triton_with(LAUNCH + "global LAST  # HERE\nLAST = out\nreturn out", header="LAST = None\n")
    assert ("global-state", line_of(source, "# HERE")) in found(check(source))
    cached = TRITON_ADD + "\n\n@functools.lru_cache(maxsize=None)  # HERE\ndef build(n):\n    return n\n"
    cached = "import functools\n" + textwrap.dedent(cached)
    assert ("global-state", line_of(cached, "# HERE")) in found(check(cached))


def test_summary_names_the_first_violation_and_counts_the_rest() -> None:
    source = triton_with(LAUNCH + "a = torch.matmul(out, y)\nreturn out.half()")
    report = check(source)
    assert len(report.violations) == 2
    assert report.summary() == (f"line {report.violations[0].line} [torch-compute] "
                                f"{report.violations[0].message} (+1 more)")
    assert "torch.matmul" in report.violations[0].message


def test_cpu_names_in_an_extern_c_block() -> None:
    source = r'''
        #include <cmath>
        static float helper(float v) { return v; }
        extern "C" {
        // y = max(x, 0)
        void relu(const float* x, float* y, long n) { for (long i = 0; i < n; ++i) { y[i] = helper(x[i]); } }
        int version(void);
        }
        extern "C" double total(const double* x, long n) { return 0.0; }
    '''
    assert extern_c_names(source) == {"relu", "version", "total"}


def test_triton_kernels_must_be_launched_not_run_as_python() -> None:
    direct = triton_with("out = torch.empty_like(x)\nadd_kernel(x, y, out, x.numel(), 1024)  # HERE\nreturn out")
    assert ("no-custom-kernel", line_of(direct, "# HERE")) in found(check(direct))
    raw = triton_with(LAUNCH + "return add_kernel.fn(x, y)  # HERE")
    assert ("introspection", line_of(raw, "# HERE")) in found(check(raw))
    torch_in_kernel = TRITON_ADD + "\n\n@triton.jit\ndef sneaky(a):\n    return torch.relu(a)  # HERE\n"
    assert ("torch-compute", line_of(torch_in_kernel, "# HERE")) in found(check(torch_in_kernel))


def test_torch_modules_handed_around_are_compute() -> None:
    source = triton_with(LAUNCH + "return self.F.linear(out, y)", init="self.F = F  # HERE",
                         header="import torch.nn.functional as F\n")
    assert ("torch-compute", line_of(source, "# HERE")) in found(check(source))


def test_unused_input_makers_may_use_torch() -> None:
    makers = "\n\ndef get_inputs():\n    return [torch.randn(4), torch.randn(4)]  # HERE\n\ndef get_init_inputs():\n    return []\n"
    assert check(TRITON_ADD + makers).ok
    called = triton_with(LAUNCH + "return get_inputs()[0]") + makers
    assert ("torch-compute", line_of(called, "# HERE")) in found(check(called))


def test_cheats_inside_c_sources() -> None:
    matmul = LOAD_INLINE_ADD.replace("auto out = torch::zeros_like(a);", "auto out = torch::matmul(a, b);")
    assert found(check(matmul)) == {("torch-compute", line_of(matmul, "elementwise_add_source ="))}
    stream = NVRTC_SCALE.replace("int i =", "cudaStream_t s; cudaStreamCreate(&s); int i =")
    assert found(check(stream)) == {("streams-events", line_of(stream, "SRC = r"))}


def test_mutable_defaults_and_async_functions() -> None:
    memo = TRITON_ADD + "\n\ndef _once(x, memo={}):  # HERE\n    return memo.get('y')\n"
    assert found(check(memo)) == {("global-state", line_of(memo, "# HERE"))}
    sleepy = TRITON_ADD + "\n\nasync def later():  # HERE\n    pass\n"
    assert found(check(sleepy)) == {("threads-processes", line_of(sleepy, "# HERE"))}


def test_a_parameter_may_shadow_a_builtin() -> None:
    source = TRITON_ADD + "\n\ndef _launch(input, out):\n    add_kernel[(1,)](input, input, out, input.numel(), BLOCK=1024)\n"
    assert check(source).ok


def test_code_too_deep_to_check_is_rejected() -> None:
    source = triton_with(LAUNCH + "z = " + " + ".join(["1"] * 2000) + "\nreturn out")
    assert [v.rule for v in check(source).violations] == ["syntax"]
