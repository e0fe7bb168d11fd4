"""The expert's analysis: which task forwards become which pattern, and what it refuses (and says why)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import expert_tasks
import pytest
from expert_tasks import analysis_of

from kernelwright.generate.expert.analysis import analyze, analyze_in_process
from kernelwright.generate.expert.patterns import (
    Call, Const, Input, Matmul, Norm, Pattern, Pointwise, RowReduce, Unsupported, Value, Weight,
)
from kernelwright.generate.expert.patterns import CrossEntropy, Scan
from kernelwright.generate.expert.patterns import Conv
from kernelwright.generate.expert.patterns import ColumnReduce
from kernelwright.generate.expert.patterns import Attention
from kernelwright.generate.expert.patterns import KLDivergence
from kernelwright.generate.expert.patterns import Dim, Projections, Rotary, View
from kernelwright.generate.expert.patterns import Chain
from kernelwright.generate.expert.patterns import PatchEmbed
from kernelwright.task import load_task, load_tasks

ROOT = Path(__file__).parent.parent
BUILTIN = ROOT / "src" / "kernelwright" / "suites" / "builtin"
X = Input(0)


def write_task(tmp_path: Path, forward: str, init: str = "pass", args: str = "x",
               inputs: str = "[torch.randn(8, 32)]", meta: str = "", name: str = "task") -> Path:
    """A KernelBench task file: `init` after super().__init__() (c is 32), `return forward` over `args`."""
    return expert_tasks.write_task(tmp_path, name, forward, inputs, init, args, header=meta, init_params="c=32",
                                   init_inputs="[]")


def pattern_of(tmp_path: Path, forward: str, **kwargs: str) -> Pattern:
    return analysis_of(write_task(tmp_path, forward, **kwargs)).pattern


# -- pointwise ------------------------------------------------------------------------------------------

def test_gelu_is_one_call_with_the_task_s_shape_args_imports_and_init(tmp_path: Path) -> None:
    analysis = analysis_of(write_task(tmp_path, "F.gelu(x)"))
    assert analysis.pattern == Pointwise(Call("gelu", (X,)), (8, 32), "float32")
    assert analysis.forward_args == ("x",) and not analysis.outputs_fp32
    assert analysis.imports == "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F"
    assert analysis.init_source.startswith("    def __init__(self, c=32):\n        super().__init__()")
    assert pattern_of(tmp_path, 'F.gelu(x, approximate="tanh")').expr == Call("gelu_tanh", (X,))


def test_swish_residual_is_a_tree_over_two_full_inputs() -> None:
    analysis = analysis_of(ROOT / "examples" / "tasks" / "swish_residual.py")
    assert analysis.pattern.expr == Call("add", (Call("mul", (X, Call("sigmoid", (X,)))), Input(1)))
    assert analysis.forward_args == ("x", "r")


def test_parameters_are_weights_with_row_and_scalar_layouts(tmp_path: Path) -> None:
    init = "self.bias = nn.Parameter(torch.randn(c)); self.scale = nn.Parameter(torch.ones(1))"
    pattern = pattern_of(tmp_path, "torch.relu(x + self.bias) * self.scale", init=init)
    assert pattern.expr == Call("mul", (Call("relu", (Call("add", (X, Weight("bias", "row"))),)),
                                        Weight("scale", "scalar")))


def test_clamp_leaky_and_scalar_chains_become_consts(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "torch.clamp(F.leaky_relu(2.0 * x - 1, 0.1), max=3.0).pow(2)")
    leaky = Call("leaky_relu", (Call("sub", (Call("mul", (Const(2.0), X)), Const(1.0))), Const(0.1)))
    assert pattern.expr == Call("square", (Call("clamp", (leaky, Const(-math.inf), Const(3.0))),))
    assert pattern_of(tmp_path, "F.hardtanh(x) ** 3").expr == Call(
        "pow", (Call("clamp", (X, Const(-1.0), Const(1.0))), Const(3.0)))


def test_other_broadcasts_and_unsqueezed_inputs_are_broadcast_leaves(tmp_path: Path) -> None:
    channel = pattern_of(tmp_path, "x * self.scale", init="self.scale = nn.Parameter(torch.ones(4, 1, 1))",
                         inputs="[torch.randn(2, 4, 3, 5)]")
    assert channel.expr == Call("mul", (X, Weight("scale", "broadcast")))
    gated = pattern_of(tmp_path, "x * g.unsqueeze(1)", args="x, g", inputs="[torch.randn(2, 3, 5), torch.randn(2, 5)]")
    assert gated.expr == Call("mul", (X, Input(1, "broadcast", (1,))))


def test_batch_norm_in_eval_is_a_per_channel_affine_map(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "self.bn(x)", init="self.bn = nn.BatchNorm2d(4)", inputs="[torch.randn(2, 4, 3, 5)]")
    channel = {name: Weight(f"bn.{name}", "broadcast", (1, 2)) for name in ("running_mean", "running_var", "weight",
                                                                          "bias")}
    normalized = Call("div", (Call("sub", (X, channel["running_mean"])),
                              Call("sqrt", (Call("add", (channel["running_var"], Const(1e-5))),))))
    assert pattern.expr == Call("add", (Call("mul", (normalized, channel["weight"])), channel["bias"]))


def test_a_broadcast_beyond_four_dims_is_refused_naming_the_shapes(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match=r"y of shape \(2, 1, 2, 3, 5\) does not broadcast .* more than 4 dims"):
        pattern_of(tmp_path, "x + y", args="x, y", inputs="[torch.randn(2, 2, 2, 3, 5), torch.randn(2, 1, 2, 3, 5)]")


# -- reductions --------------------------------------------------------------------------------------------

def test_softmax_over_the_last_dim_is_a_row_normalization(tmp_path: Path) -> None:
    assert pattern_of(tmp_path, "torch.softmax(x, dim=-1)") == RowReduce("softmax", X, (8, 32), "float32")
    assert pattern_of(tmp_path, "self.sm(x * 2.0)", init="self.sm = nn.Softmax(dim=1)").prologue == Call(
        "mul", (X, Const(2.0)))
    assert pattern_of(tmp_path, "F.log_softmax(x, -1)").kind == "log_softmax"


def test_reductions_record_keepdim_and_an_epilogue_over_the_value(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "x.exp().sum(-1, keepdim=True) * 0.5")
    assert pattern == RowReduce("sum", Call("exp", (X,)), (8, 32), "float32", True, Call("mul", (Value(), Const(0.5))))
    scaled = pattern_of(tmp_path, "x.amax(-1) * self.s", init="self.s = nn.Parameter(torch.ones(()))")
    assert scaled.epilogue == Call("mul", (Value(), Weight("s", "scalar")))
    assert pattern_of(tmp_path, "torch.logsumexp(x, dim=1)") == RowReduce("logsumexp", X, (8, 32), "float32")
    assert pattern_of(tmp_path, "torch.argmax(x, dim=-1)").kind == "argmax"
    assert pattern_of(tmp_path, "torch.max(x, dim=-1).values").kind == "max"


def test_a_reduction_over_other_dims_is_refused_naming_them(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match=r"sum reduces over dims \(0, 2\); the expert reduces over adjacent dims.* "
                                          r"at task.py:\d+"):
        pattern_of(tmp_path, "x.sum(dim=(0, 2))", inputs="[torch.randn(2, 3, 4)]")
    with pytest.raises(Unsupported, match=r"logsumexp reduces over dims \(1, 2\)"):
        pattern_of(tmp_path, "torch.logsumexp(x, dim=(1, 2))", inputs="[torch.randn(2, 3, 4)]")


def test_reductions_and_norms_over_trailing_dims_record_how_many(tmp_path: Path) -> None:
    mean = pattern_of(tmp_path, "((x - y) ** 2).mean(dim=(1, 2))", args="x, y",
                      inputs="[torch.randn(2, 3, 4), torch.randn(2, 3, 4)]")
    assert mean == RowReduce("mean", Call("square", (Call("sub", (X, Input(1))),)), (2, 3, 4), "float32", dims=2)
    instance = pattern_of(tmp_path, "self.norm(x)", init="self.norm = nn.InstanceNorm2d(3)",
                          inputs="[torch.randn(2, 3, 4, 5)]")
    assert instance == Norm("layer", X, (2, 3, 4, 5), "float32", 1e-5, dims=2)
    layer = pattern_of(tmp_path, "self.ln(x)", init="self.ln = nn.LayerNorm((4, 5))", inputs="[torch.randn(2, 4, 5)]")
    assert layer == Norm("layer", X, (2, 4, 5), "float32", 1e-5, Weight("ln.weight"), Weight("ln.bias"), dims=2)
    with pytest.raises(Unsupported, match="instance norm with an affine map"):
        pattern_of(tmp_path, "self.norm(x)", init="self.norm = nn.InstanceNorm2d(3, affine=True)",
                   inputs="[torch.randn(2, 3, 4, 5)]")


def test_a_reduction_combined_with_a_full_tensor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match="combined with tensors"):
        pattern_of(tmp_path, "x - x.amax(-1, keepdim=True)")


# -- norms -------------------------------------------------------------------------------------------------

def test_layer_norm_module_records_eps_and_its_weights_by_attribute_name(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "self.ln(x)", init="self.ln = nn.LayerNorm(c, eps=1e-6)")
    assert pattern == Norm("layer", X, (8, 32), "float32", 1e-6, Weight("ln.weight"), Weight("ln.bias"))
    bare = pattern_of(tmp_path, "self.ln(x)", init="self.ln = nn.LayerNorm(c, elementwise_affine=False)")
    assert (bare.weight, bare.bias, bare.eps) == (None, None, 1e-5)


def test_residual_layer_norm_has_an_add_prologue_and_a_pointwise_epilogue(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "F.relu(self.norm(x + y))", init="self.norm = nn.LayerNorm(c)",
                         args="x, y", inputs="[torch.randn(8, 32), torch.randn(8, 32)]")
    assert pattern.prologue == Call("add", (X, Input(1))) and pattern.epilogue == Call("relu", (Value(),))


def test_explicit_rms_norm_with_casts_is_a_norm(tmp_path: Path) -> None:
    forward = ("self.weight * (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)")
    pattern = pattern_of(tmp_path, forward, init="self.weight = nn.Parameter(torch.ones(c))")
    assert pattern == Norm("rms", X, (8, 32), "float32", 1e-6, Weight("weight"))
    module = pattern_of(tmp_path, "self.norm(x)", init="self.norm = nn.RMSNorm(c)")
    assert module.kind == "rms" and module.weight == Weight("norm.weight")
    assert module.eps == pytest.approx(1.1920928955078125e-07)  # eps=None: float32's machine epsilon


# -- matrix products ---------------------------------------------------------------------------------------

MM_INIT = "self.w = nn.Parameter(torch.randn(c, 16)); self.v = nn.Parameter(torch.randn(16, c)); " \
          "self.b = nn.Parameter(torch.randn(16))"


def test_linear_is_a_matmul_reading_its_weight_transposed_with_bias_and_epilogue(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "F.gelu(self.fc(x)) * 2.0", init="self.fc = nn.Linear(c, 16)",
                         inputs="[torch.randn(2, 8, 32)]")
    assert pattern == Matmul(X, Weight("fc.weight", "full"), True, False, (2, 8, 16), 32, "float32",
                             Weight("fc.bias"), Call("mul", (Call("gelu", (Value(),)), Const(2.0))))
    assert (pattern.batch, pattern.m, pattern.n) == (1, 16, 16)  # the leading dims are rows
    bare = pattern_of(tmp_path, "self.fc(x)", init="self.fc = nn.Linear(c, 16, bias=False)")
    assert (bare.bias, bare.epilogue, bare.shape) == (None, None, (8, 16))


@pytest.mark.parametrize(("forward", "b", "transposed"), [
    ("x @ self.w", "w", False), ("torch.matmul(x, self.w)", "w", False), ("torch.mm(x, self.w.float())", "w", False),
    ("x.matmul(self.v.t())", "v", True), ("F.linear(x, self.v)", "v", True), ("x @ self.v.transpose(0, 1)", "v", True),
    ("x @ self.w.T.T", "w", False),
])
def test_every_spelling_reads_b_where_it_lies(tmp_path: Path, forward: str, b: str, transposed: bool) -> None:
    pattern = pattern_of(tmp_path, forward, init=MM_INIT)
    assert (pattern.a, pattern.b, pattern.b_transposed, pattern.shape, pattern.k) == (
        X, Weight(b, "full"), transposed, (8, 16), 32)


def test_bmm_of_two_inputs_is_batched_and_addmm_s_vector_is_its_bias(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "torch.bmm(x, y.transpose(1, 2))", args="x, y",
                         inputs="[torch.randn(3, 8, 32), torch.randn(3, 5, 32)]")
    assert pattern == Matmul(X, Input(1, "full"), True, True, (3, 8, 5), 32, "float32")
    assert (pattern.batch, pattern.m, pattern.n) == (3, 8, 5)
    addmm = pattern_of(tmp_path, "torch.addmm(self.b, x, self.w)", init=MM_INIT)
    assert (addmm.bias, addmm.epilogue) == (Weight("b"), None)


def test_a_residual_is_a_full_input_of_the_epilogue(tmp_path: Path) -> None:
    two = {"args": "x, r", "inputs": "[torch.randn(8, 32), torch.randn(8, 16)]", "init": MM_INIT}
    assert pattern_of(tmp_path, "r + x @ self.w", **two).epilogue == Call("add", (Input(1), Value()))
    folded = pattern_of(tmp_path, "torch.addmm(r, x, self.w).relu()", **two)  # not a vector: added by the epilogue
    assert (folded.bias, folded.epilogue) == (None, Call("relu", (Call("add", (Value(), Input(1))),)))


@pytest.mark.parametrize(("forward", "inputs", "why"), [
    ("torch.matmul(self.v, x.T)", "torch.randn(8, 32)", "matmul's left operand is a parameter"),
    ("x @ self.b", "torch.randn(8, 16)", r"matmul of a vector \(shapes \(8, 16\) and \(16,\)\)"),
    ("torch.matmul(x, self.w.expand(3, 32, 16))", "torch.randn(3, 8, 32)", "computed by expand"),
    ("torch.matmul(x, y)", "torch.randn(2, 8, 32), torch.randn(1, 32, 16)", "matmul broadcasts batch dims"),
    ("torch.relu(x) @ self.w", "torch.randn(8, 32)", "matmul of a tensor computed by relu"),
    ("(x @ self.w).sum(-1)", "torch.randn(8, 32)", "sum with a matrix product"),
    ("torch.addmm(self.b, x, self.w, beta=0.5)", "torch.randn(8, 32)", "addmm with beta or alpha"),
    ("(x @ self.w).view(-1)", "torch.randn(8, 32)", "view is not an op the expert writes"),
])
def test_products_the_expert_does_not_write_are_refused_saying_why(tmp_path: Path, forward: str, inputs: str,
                                                                   why: str) -> None:
    args = "x, y" if "(x, y)" in forward else "x"
    with pytest.raises(Unsupported, match=why):
        pattern_of(tmp_path, forward, init=MM_INIT, args=args, inputs=f"[{inputs}]")


def test_products_in_sequence_are_a_chain_of_kernels_each_reading_the_one_before(tmp_path: Path) -> None:
    w, v = Weight("w", "full"), Weight("v", "full")
    assert pattern_of(tmp_path, "torch.relu(x @ self.w) @ self.v", init=MM_INIT) == Chain((
        Matmul(X, w, False, False, (8, 16), 32, "float32", epilogue=Call("relu", (Value(),))),
        Matmul(Input(1), v, False, False, (8, 32), 16, "float32")))
    assert pattern_of(tmp_path, "x @ x.T @ x") == Chain((
        Matmul(X, Input(0, "full"), True, False, (8, 8), 32, "float32"),
        Matmul(Input(1), Input(0, "full"), False, False, (8, 32), 8, "float32")))
    # A norm after a product, or before one.
    assert pattern_of(tmp_path, "F.layer_norm(x @ self.w, (16,))", init=MM_INIT) == Chain((
        Matmul(X, w, False, False, (8, 16), 32, "float32"), Norm("layer", Input(1), (8, 16), "float32", 1e-5)))
    first, _ = pattern_of(tmp_path, "self.ln(x) @ self.w", init=MM_INIT + "; self.ln = nn.LayerNorm(c)").stages
    assert (first.kind, first.prologue, first.weight) == ("layer", X, Weight("ln.weight"))


def test_precision_is_the_lowest_the_task_s_tolerance_admits(tmp_path: Path) -> None:
    def precision(meta: str) -> str | None:
        return analysis_of(write_task(tmp_path, "x @ x.T", meta=meta)).precision

    assert precision("") == "fp32"
    assert precision('KERNELWRIGHT = {"precision": "tf32"}') == "tf32"
    assert precision('KERNELWRIGHT = {"atol": 1e-2, "rtol": 1e-2}') == "fp16"  # fp16's pair, explicitly
    assert precision('KERNELWRIGHT = {"precision": "tf32", "atol": 1e-5}') == "fp32"  # tighter than any: fp32
    assert precision('KERNELWRIGHT = {"dtype": "bfloat16"}') == "bf16"


def test_builtin_matrix_products_match_and_the_fused_blocks_are_refused_naming_why() -> None:
    found: dict[str, Pattern | str] = {}
    for task in load_tasks(BUILTIN):
        if task.name.startswith(("matmul_", "fused_")):
            try:
                found[task.name] = analyze_in_process(str(task.path), task.meta.to_dict()).pattern
            except Unsupported as e:
                found[task.name] = str(e)
    assert found["matmul_bias_relu"] == Matmul(X, Weight("fc1.weight", "full"), True, False, (2, 2048, 16384), 4096,
                                               "bfloat16", Weight("fc1.bias"), Call("relu", (Value(),)))
    assert found["matmul_residual"].epilogue == Call("add", (Input(1), Value()))
    assert found["matmul_batched_moe"] == Matmul(X, Weight("w1", "full"), False, True, (8, 1536, 14336), 4096,
                                                 "bfloat16")
    assert found["matmul_square_fp32"] == Matmul(X, Input(1, "full"), False, False, (4096, 4096), 4096, "float32")
    assert found["matmul_square_bf16"].dtype == "bfloat16"
    assert (found["matmul_matvec_lm_head"].m, found["matmul_tall_skinny_lora"].n) == (1, 16)
    # The fused blocks are chains of kernels: Input(1), Input(2) past the forward's one argument are the
    # earlier stages' outputs.
    def linear(name: str, a: Input, shape: tuple[int, ...], k: int, epilogue: Call | None = None,
               bias: bool = False) -> Matmul:
        return Matmul(a, Weight(f"{name}.weight", "full"), True, False, shape, k, "bfloat16",
                      Weight(f"{name}.bias") if bias else None, epilogue)

    assert found["fused_llama3_swiglu_mlp"] == Chain((
        linear("gate_proj", X, (1, 2048, 14336), 4096, Call("silu", (Value(),))),
        linear("up_proj", X, (1, 2048, 14336), 4096, Call("mul", (Input(1), Value()))),
        linear("down_proj", Input(2), (1, 2048, 4096), 14336)))
    assert found["fused_gpt2xl_mlp"] == Chain((
        linear("c_fc", X, (16, 1024, 6400), 1600, Call("gelu_tanh", (Value(),)), bias=True),
        linear("c_proj", Input(1), (16, 1024, 1600), 6400, bias=True)))
    assert found["fused_bert_output_block"] == Chain((
        Matmul(X, Weight("dense.weight", "full"), True, False, (32, 512, 768), 3072, "float32", Weight("dense.bias"),
               Call("add", (Value(), Input(1)))),
        Norm("layer", Input(2), (32, 512, 768), "float32", 1e-12, Weight("LayerNorm.weight"), Weight("LayerNorm.bias"))))
    heads = (View("view", (Dim(0, 0), Dim(0, 1), -1, 128)), View("transpose", (1, 2)))  # the task's b, s = x.shape
    assert found["fused_llama3_qkv_heads"] == Projections(tuple(
        Matmul(X, Weight(f"{p}_proj.weight", "full"), True, False, (4, 2048, n), 4096, "bfloat16")
        for p, n in (("q", 4096), ("k", 1024), ("v", 1024))), (heads,) * 3)


def test_a_norm_may_return_its_input_too_in_either_order(tmp_path: Path) -> None:
    body = "(h := x + y) * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)"
    first = pattern_of(tmp_path, f"({body}, h)", args="x, y", inputs="[torch.randn(8, 32), torch.randn(8, 32)]")
    assert first == Norm("rms", Call("add", (X, Input(1))), (8, 32), "float32", 1e-6, outputs=("value", "prologue"))
    second = pattern_of(tmp_path, "(h := x + y), self.ln(h)", args="x, y", init="self.ln = nn.LayerNorm(32)",
                        inputs="[torch.randn(8, 32), torch.randn(8, 32)]")
    assert second.outputs == ("prologue", "value")
    with pytest.raises(Unsupported, match="returns 2 outputs; the expert writes one, or a norm and its input"):
        pattern_of(tmp_path, "self.ln(x), x * 2", init="self.ln = nn.LayerNorm(32)")


# -- several outputs: projections of one input, rotary embeddings --------------------------------------------

def test_the_rope_task_is_rotary_over_q_and_k_with_cos_and_sin_broadcast_over_heads() -> None:
    cos, sin = Input(2, "broadcast", (1,)), Input(3, "broadcast", (1,))

    def rope(x: Input) -> Call:
        return Call("add", (Call("mul", (x, cos)), Call("mul", (Call("rotate_half", (x,)), sin))))

    assert analysis_of(BUILTIN / "fused_llama3_rope.py").pattern == Rotary((
        Pointwise(rope(X), (8, 32, 4096, 128), "bfloat16"), Pointwise(rope(Input(1)), (8, 8, 4096, 128), "bfloat16")))


@pytest.mark.parametrize("rotated", [
    "torch.cat((-x[..., x.shape[-1] // 2:], x[..., :x.shape[-1] // 2]), dim=-1)",
    "torch.cat([x[:, 16:].neg(), x[:, :-16]], -1)",
    "torch.cat((-(h := x.chunk(2, dim=-1))[1], h[0]), dim=-1)",
])
def test_rotate_half_spellings_are_one_op_and_alone_a_pointwise(tmp_path: Path, rotated: str) -> None:
    assert pattern_of(tmp_path, f"x * 2.0 + {rotated}") == Pointwise(
        Call("add", (Call("mul", (X, Const(2.0))), Call("rotate_half", (X,)))), (8, 32), "float32")


def test_projections_of_one_input_keep_their_biases_and_replay_their_views(tmp_path: Path) -> None:
    pattern = pattern_of(tmp_path, "self.q(x).view(x.size(0), x.shape[1], 4, 8).permute(0, 2, 1, 3), "
                                   "self.k(x).reshape(-1, 16)",
                         init="self.q = nn.Linear(c, 32); self.k = nn.Linear(c, 16)", inputs="[torch.randn(2, 8, 32)]")
    q, k = (Matmul(X, Weight(f"{p}.weight", "full"), True, False, (2, 8, n), 32, "float32", Weight(f"{p}.bias"))
            for p, n in (("q", 32), ("k", 16)))
    assert pattern == Projections((q, k), ((View("view", (Dim(0, 0), Dim(0, 1), 4, 8)), View("permute", (0, 2, 1, 3))),
                                           (View("reshape", (-1, 16)),)))


@pytest.mark.parametrize(("forward", "why"), [
    ("self.q(x) * 2.0, self.k(x)", "mul beside matrix products"),
    ("self.q(x), x.view(-1)", "x itself beside matrix products"),
    ("self.q(x), self.k(y)", r"linear \(k\) is batched, of another input or adds a tensor"),
    ("self.q(x).view(x.shape[0] * 2, -1), self.k(x)", "view to a size computed by mul"),
    ("x * 2.0 + torch.cat((x[:, 16:], x[:, :16]), -1)", "cat is not an op the expert writes"),  # no sign
    ("x + torch.cat((-x[:, 8:], x[:, :8]), -1)", "cat is not an op the expert writes"),  # not halves
    ("x * 2.0, x + 1.0", "returns 2 outputs; the expert writes one, or a norm and its input, several products"),
    ("torch.cat((-x[:, 16:], x[:, :16]), -1), x.sum(-1)", "a RowReduce output beside rotary embeddings"),
])
def test_several_outputs_the_expert_does_not_write_are_refused_saying_why(tmp_path: Path, forward: str,
                                                                          why: str) -> None:
    with pytest.raises(Unsupported, match=why):
        pattern_of(tmp_path, forward, init="self.q = nn.Linear(c, 32); self.k = nn.Linear(c, 16)", args="x, y",
                   inputs="[torch.randn(8, 32), torch.randn(8, 32)]")


# -- refusals, dtype, init, the subprocess ------------------------------------------------------------------

@pytest.mark.parametrize(("forward", "init", "op"), [
    ("(x @ x.T) @ (x * 2.0)", "", "a second matrix product, matmul"),  # an operand computed beside the chain
    ("self.conv(x)", "self.conv = nn.Conv1d(8, 8, 3)", r"Conv1d \(conv\)"),
    ("(x, x + 1)", "", "returns 2 outputs"),
])
def test_other_ops_are_refused_naming_the_op(tmp_path: Path, forward: str, init: str, op: str) -> None:
    with pytest.raises(Unsupported, match=op):
        pattern_of(tmp_path, forward, init=init)


def test_a_tensor_computed_from_buffers_alone_is_refused_not_taken_for_a_weight(tmp_path: Path) -> None:
    # torch.fx folds `self.temp ** 2` into a constant of its own, which the candidate's module would lack.
    refusal = r"computes a tensor from its parameters or buffers alone; .* at task.py:\d+ `return x \* self.temp \*\* 2`"
    with pytest.raises(Unsupported, match=refusal):
        pattern_of(tmp_path, "x * self.temp ** 2", init='self.register_buffer("temp", torch.tensor(2.0))')
    assert pattern_of(tmp_path, "x * self.temp * self.temp",
                      init='self.register_buffer("temp", torch.tensor(2.0))').expr.op == "mul"


def test_a_bf16_task_reduces_in_fp32(tmp_path: Path) -> None:
    analysis = analysis_of(write_task(tmp_path, "torch.sigmoid(x)", meta='KERNELWRIGHT = {"dtype": "bfloat16"}'))
    assert analysis.pattern.dtype == "bfloat16" and analysis.outputs_fp32


def test_init_source_is_a_method_with_super_rewritten(tmp_path: Path) -> None:
    path = write_task(tmp_path, "x + self.bias", init="self.bias = nn.Parameter(torch.zeros(c))")
    path.write_text(path.read_text().replace("super().__init__()", "super(Model, self).__init__()"))
    assert analysis_of(path).init_source == (
        "    def __init__(self, c=32):\n        super().__init__()\n        self.bias = nn.Parameter(torch.zeros(c))\n")
    path.write_text(path.read_text().replace("torch.zeros(c)", "torch.zeros(c) if Model else None"))
    with pytest.raises(Unsupported, match="reads Model from the task module"):
        analysis_of(path)


def test_init_reading_a_global_bound_by_any_form_of_assignment_is_refused(tmp_path: Path) -> None:
    path = write_task(tmp_path, "x + self.bias", init="self.bias = nn.Parameter(torch.zeros(c) + scale)")
    text = path.read_text()
    for binding in ("scale, unused = 1.0, 2.0", "for scale in (1.0,):\n    pass", "if True:\n    scale = 1.0"):
        path.write_text(text.replace("class Model", f"{binding}\n\n\nclass Model"))
        with pytest.raises(Unsupported, match="reads scale from the task module"):
            analysis_of(path)


def test_a_task_that_fails_on_the_meta_device_is_traced_on_the_cpu_at_its_smallest_variant(tmp_path: Path) -> None:
    meta = 'cols = 32; KERNELWRIGHT = {"shape_variants": [{"cols": 20}, {"cols": 16}]}'
    inputs = "[torch.randn(8, cols) * torch.randn(1).abs().item()]"  # .item() has no meta kernel
    assert pattern_of(tmp_path, "torch.exp(x)", meta=meta, inputs=inputs).shape == (8, 16)
    with pytest.raises(Unsupported, match="Model.forward reads cols, which the shape variants change"):
        pattern_of(tmp_path, "x * cols", meta=meta, inputs=inputs)


def test_analyze_runs_in_a_subprocess_caches_and_reraises_unsupported(tmp_path: Path) -> None:
    task = load_task(write_task(tmp_path, "torch.tanh(x)", name="only_in_the_child"))
    first = analyze(task)
    assert first.pattern.expr == Call("tanh", (X,)) and analyze(task) is first
    assert "_kernelwright_task_only_in_the_child" not in sys.modules  # the task never ran here
    refused = load_task(write_task(tmp_path, "torch.tril(x)", name="tril"))
    with pytest.raises(Unsupported, match="^tril is not an op the expert writes .* at tril.py:"):
        analyze(refused)
    # A second task: the next analysis's process is started ahead, and closing the generator stops it (a bench
    # lane's exit would otherwise wait on it forever).
    from kernelwright.generate.expert import analysis
    from kernelwright.generate.expert.generator import ExpertGenerator

    spare = analysis._spare
    assert spare is not None
    processes = list(spare._processes.values())
    ExpertGenerator("cpu").close()
    assert analysis._spare is None and processes and not any(p.is_alive() for p in processes)


def test_builtin_suite_matches_or_is_refused_never_errors() -> None:
    matched = {}
    for task in load_tasks(BUILTIN):
        try:
            matched[task.name] = analyze_in_process(str(task.path), task.meta.to_dict()).pattern
        except Unsupported as e:
            assert str(e) and "\n" not in str(e)
    expected = {"pointwise_silu": Pointwise, "pointwise_gelu_tanh": Pointwise, "pointwise_bias_gelu": Pointwise,
                "norm_layernorm": Norm, "norm_rmsnorm": Norm, "softmax_vocab": RowReduce,
                "softmax_log_softmax": RowReduce, "reduce_logsumexp": RowReduce, "reduce_argmax_vocab": RowReduce,
                "reduce_max_points": RowReduce, "matmul_bias_relu": Matmul, "matmul_square_fp32": Matmul,
                "matmul_square_bf16": Matmul, "matmul_batched_moe": Matmul, "matmul_residual": Matmul,
                "matmul_tall_skinny_lora": Matmul, "matmul_matvec_lm_head": Matmul,
                "pointwise_broadcast_chain": Pointwise, "pointwise_leaky_clamp": Pointwise,
                "norm_batchnorm_inference": Pointwise, "norm_instancenorm": Norm, "reduce_mean_spatial": RowReduce,
                "loss_mse_diffusion": RowReduce}
    expected |= {"reduce_cumsum_topp": Scan, "reduce_reverse_cumsum": Scan, "reduce_cumprod_nerf": Scan,
                 "loss_cross_entropy": CrossEntropy}
    expected |= {"conv_resnet50_3x3": Conv, "conv_pointwise_1x1": Conv, "conv_depthwise_mobilenetv2": Conv,
                 "conv_bn_relu_stem": Conv}
    expected |= {"attention_gpt2xl_sdpa": Attention, "attention_llama3_causal": Attention,
                 "attention_llama3_decode": Attention, "attention_vit_b16": Attention}
    expected |= {"norm_residual_rmsnorm": Norm, "fused_llama3_70b_residual_rmsnorm": Norm}  # (norm(h), h)
    expected |= {"loss_kl_distill": KLDivergence}
    expected |= {"fused_llama3_qkv_heads": Projections, "fused_llama3_rope": Rotary}
    expected |= {"reduce_sum_tokens": ColumnReduce, "norm_groupnorm": Norm}
    expected |= {"fused_gpt2xl_mlp": Chain, "fused_llama3_swiglu_mlp": Chain, "fused_bert_output_block": Chain}
    expected |= {"fused_vit_b16_patch_embed": PatchEmbed}
    assert {name: type(p) for name, p in matched.items()} == expected
