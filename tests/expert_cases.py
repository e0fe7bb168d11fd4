"""Expert template test cases shared by the CPU and Triton template tests.

Tasks are small KernelBench files (64 x 1000, and a shape variant); each one's
Analysis is built by hand, as the analysis would build it, so that templates
are tested apart from the analysis.
"""

from __future__ import annotations

import itertools
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelwright.generate.expert.patterns import (
    Analysis, Call, Const, Input, Norm, Pattern, Pointwise, RowReduce, Value, Weight,
)

SHAPE = (64, 1000)
X, Y = Input(0), Input(1)
TASK = '''import torch
import torch.nn as nn
import torch.nn.functional as F

rows = 64
cols = 1000

KERNELWRIGHT = {{"shape_variants": [{variant}]}}


class Model(nn.Module):
{init}

    def forward(self, {args}):
{body}


def get_inputs():
    return [{inputs}]


def get_init_inputs():
    return [cols]
'''
PLAIN_INIT = "def __init__(self, cols):\n    super().__init__()\n"
BIAS_INIT = PLAIN_INIT + "    self.bias = nn.Parameter(torch.randn(cols))\n"


def call(op: str, *args: Any) -> Call:
    return Call(op, tuple(Const(a) if isinstance(a, (int, float)) else a for a in args))


@dataclass(frozen=True)
class Case:
    name: str
    pattern: Pattern
    body: str  # the reference forward's body
    init: str = PLAIN_INIT
    args: tuple[str, ...] = ("x",)
    inputs: str = "torch.randn(rows, cols)"

    variant = {"rows": 7, "cols": 333}  # the task's one shape variant

    def analysis(self) -> Analysis:
        return Analysis(self.pattern, self.args, self.init, "import torch\nimport torch.nn as nn\n"
                        "import torch.nn.functional as F")

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.name}.py"
        path.write_text(TASK.format(init=textwrap.indent(self.init.rstrip(), "    "), args=", ".join(self.args),
                                    body=textwrap.indent(self.body, "        "), inputs=self.inputs,
                                    variant=json.dumps(self.variant)))
        return path


def template_for(case: Case, templates: list[Any]) -> Any:
    """The one template of `templates` that writes the case."""
    [template] = [t for t in templates if t.matches(case.analysis())]
    return template


def corners(template: Any, analysis: Analysis) -> list[dict[str, Any]]:
    """Every combination of each parameter's first and last value."""
    space = template.space(analysis)
    ends = [dict.fromkeys((values[0], values[-1])) for values in space.values()]
    return [dict(zip(space, combo)) for combo in itertools.product(*ends)]


def pointwise(expr: Any) -> Pointwise:
    return Pointwise(expr, SHAPE, "float32")


def reduce(kind: str, prologue: Any = X, keepdim: bool = False, epilogue: Any = None, shape=SHAPE,
           dims: int = 1) -> RowReduce:
    return RowReduce(kind, prologue, shape, "float32", keepdim=keepdim, epilogue=epilogue, dims=dims)


THREE_D = "torch.randn(2, rows, cols)"
LN_INIT = PLAIN_INIT + ("    self.ln = nn.LayerNorm(cols)\n    nn.init.normal_(self.ln.weight)\n"
                        "    nn.init.normal_(self.ln.bias)\n")
RMS_BODY = "h = x + residual\nreturn torch.relu(h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight)"
CASES = {c.name: c for c in [
    # sigmoid(1.5 x + bias) * x - 0.25: a row-layout weight, constants, an input used twice.
    Case("chain", pointwise(call("sub", call("mul", call("sigmoid", call("add", call("mul", X, 1.5), Weight("bias"))),
                                                   X), 0.25)),
         "return torch.sigmoid(x * 1.5 + self.bias) * x - 0.25", init=BIAS_INIT),
    Case("gelu", pointwise(call("gelu", X)), "return F.gelu(x)"),
    Case("gelu_tanh", pointwise(call("gelu_tanh", X)), "return F.gelu(x, approximate='tanh')"),
    Case("silu", pointwise(call("silu", X)), "return F.silu(x)"),
    Case("leaky_relu", pointwise(call("leaky_relu", X, 0.1)), "return F.leaky_relu(x, 0.1)"),
    Case("clamp", pointwise(call("clamp", call("softplus", X), -math.inf, 1.5)),
         "return torch.clamp(F.softplus(x), max=1.5)"),
    Case("sum", reduce("sum", call("square", X), epilogue=call("mul", Value(), 0.5)),
         "return torch.sum(x * x, dim=-1) * 0.5"),
    Case("mean_keepdim", reduce("mean", keepdim=True, shape=(2, *SHAPE)),
         "return torch.mean(x, dim=-1, keepdim=True)", inputs=THREE_D),
    Case("max", reduce("max"), "return torch.max(x, dim=-1).values"),
    Case("min", reduce("min"), "return torch.amin(x, dim=-1)"),
    Case("argmax", reduce("argmax"), "return torch.argmax(x, dim=-1)"),
    Case("argmin", reduce("argmin"), "return torch.argmin(x, dim=1)"),
    Case("logsumexp", reduce("logsumexp"), "return torch.logsumexp(x, dim=-1)"),
    Case("softmax", reduce("softmax", shape=(2, *SHAPE)), "return torch.softmax(x, dim=-1)", inputs=THREE_D),
    Case("log_softmax", reduce("log_softmax", call("add", call("div", X, 2.0), Weight("bias"))),
         "return torch.log_softmax(x / 2.0 + self.bias, dim=-1)", init=BIAS_INIT),
    Case("layer_norm", Norm("layer", X, SHAPE, "float32", 1e-5, Weight("ln.weight"), Weight("ln.bias")),
         "return self.ln(x)", init=LN_INIT),
    Case("layer_norm_plain", Norm("layer", X, SHAPE, "float32", 1e-6),
         "return F.layer_norm(x, (x.shape[-1],), eps=1e-6)"),
    Case("rms_norm", Norm("rms", call("add", X, Y), SHAPE, "float32", 1e-6, Weight("weight"),
                          epilogue=call("relu", Value())),
         RMS_BODY, init=PLAIN_INIT + "    self.weight = nn.Parameter(torch.randn(cols))\n",
         args=("x", "residual"), inputs="torch.randn(rows, cols), torch.randn(rows, cols)"),
    # Broadcasts and trailing-dims reductions (Triton templates only): a per-channel affine map on
    # [rows, 4, cols] as batch norm's, an input unsqueezed in the middle, means and norms over 2 dims.
    Case("channel_affine", pointwise(call("leaky_relu", call("add", call("mul", X, Weight("scale", "broadcast")),
                                                             Weight("shift", "broadcast")), 0.1)),
         "return F.leaky_relu(x * self.scale + self.shift, 0.1)", inputs="torch.randn(rows, 4, cols)",
         init=PLAIN_INIT + "    self.scale = nn.Parameter(torch.randn(4, 1))\n"
                           "    self.shift = nn.Parameter(torch.randn(4, 1))\n"),
    Case("unsqueeze_gate", pointwise(call("add", call("mul", X, Input(1, "broadcast", (1,))), X)),
         "return x * gate.unsqueeze(1) + x", args=("x", "gate"),
         inputs="torch.randn(rows, 3, cols), torch.randn(rows, cols)"),
    Case("mean_2d", reduce("mean", call("square", X), keepdim=True, shape=(2, *SHAPE), dims=2),
         "return (x * x).mean(dim=(1, 2), keepdim=True)", inputs=THREE_D),
    Case("rms_norm_and_sum", Norm("rms", call("add", X, Y), SHAPE, "float32", 1e-6, Weight("weight"),
                                  outputs=("value", "prologue")),
         "h = x + residual\nreturn h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight, h",
         init=PLAIN_INIT + "    self.weight = nn.Parameter(torch.randn(cols))\n",
         args=("x", "residual"), inputs="torch.randn(rows, cols), torch.randn(rows, cols)"),
    Case("layer_norm_2d", Norm("layer", X, (2, *SHAPE), "float32", 1e-5, dims=2),
         "return F.layer_norm(x, (x.shape[-2], x.shape[-1]))", inputs=THREE_D),
]}


def run_in_process(case: Case, source: str, rows: int, cols: int, dtype: str = "float32") -> None:
    """A rendered candidate against its case's reference in this process, on inputs of the given size
    and dtype (model and floating inputs cast to it, as the evaluator casts a task's)."""
    import torch

    task_ns: dict[str, Any] = {}
    exec(TASK.format(init=textwrap.indent(case.init.rstrip(), "    "), args=", ".join(case.args),
                     body=textwrap.indent(case.body, "        "), inputs=case.inputs, variant="{}"), task_ns)
    candidate_ns = _module_from(source)
    torch.manual_seed(0)
    kind = getattr(torch, dtype)
    reference = task_ns["Model"](cols).to(kind)
    new = candidate_ns.ModelNew(cols).to(kind)
    new.load_state_dict(reference.state_dict())
    inputs = [x.to(kind) for x in eval(f"[{case.inputs}]", {"torch": torch, "rows": rows, "cols": cols})]
    with torch.no_grad():
        expected, got = reference(*inputs), new(*inputs)
    expected, got = (list(out) if isinstance(out, tuple) else [out] for out in (expected, got))
    assert len(got) == len(expected), f"{case.name}: {len(got)} outputs, {len(expected)} expected"
    for i, (g, e) in enumerate(zip(got, expected)):
        where = f"{case.name} output {i} at {rows} x {cols} in {dtype}"
        assert g.shape == e.shape and g.dtype == e.dtype, where
        if e.is_floating_point():
            # The evaluator's tolerances per precision (correctness.py); bf16's covers one rounding of the output.
            tolerance = {"float32": 1e-4, "bfloat16": 2e-2, "float16": 1e-2}[dtype]
            scale = float(e.float().square().mean().sqrt()) or 1.0
            torch.testing.assert_close(g, e, rtol=tolerance, atol=tolerance * scale, msg=where)
        else:
            assert torch.equal(g, e), where



def _module_from(source: str) -> Any:
    """The candidate imported from a file, as the evaluator imports it (Triton's interpreter reads the
    source of jit functions, which exec'd text does not have)."""
    import importlib.util
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="kw-candidate-"))
    path = folder / "candidate.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"kw_candidate_{folder.name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
