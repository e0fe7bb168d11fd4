"""The expert on a real GPU: each Triton template family's first draft for a built-in task passes the
evaluator on the task's shapes and variants (the CPU interpreter forgives what the compiler may not)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kernelwright.evaluate.evaluator import Evaluator
from kernelwright.evaluate.options import EvalOptions
from kernelwright.evaluate.verdict import Status
from kernelwright.generate.base import Context
from kernelwright.generate.expert.generator import ExpertGenerator
from kernelwright.task import load_task

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

BUILTIN = Path(__file__).resolve().parent.parent / "src" / "kernelwright" / "suites" / "builtin"
# One task per template family (and the variants of a family that render different kernels).
TASKS = ["pointwise_gelu_tanh", "pointwise_leaky_clamp", "softmax_log_softmax", "reduce_argmax_vocab",
         "loss_mse_diffusion", "norm_layernorm", "norm_residual_rmsnorm", "norm_instancenorm", "matmul_residual",
         "matmul_matvec_lm_head", "matmul_batched_moe", "conv_resnet50_3x3", "conv_depthwise_mobilenetv2",
         "reduce_reverse_cumsum", "reduce_cumprod_nerf", "loss_cross_entropy", "attention_gpt2xl_sdpa",
         "attention_llama3_decode"]
TASKS += ["reduce_sum_tokens", "norm_groupnorm"]  # a reduction over a middle dim, group norm
TASKS += ["loss_kl_distill", "fused_llama3_qkv_heads", "fused_llama3_rope"]  # KL, projections, rotary
# Chains of kernels (two or three products; a product then layer norm) and the patch embedding GEMM.
TASKS += ["fused_gpt2xl_mlp", "fused_llama3_swiglu_mlp", "fused_bert_output_block", "fused_vit_b16_patch_embed"]


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator(EvalOptions(device="cuda", seeds=2, baselines=("eager",), timing_budget_s=0.2)) as ev:
        yield ev


@pytest.mark.parametrize("name", TASKS)
def test_the_first_draft_passes(evaluator, name: str) -> None:
    task = load_task(BUILTIN / f"{name}.py")
    (draft,) = ExpertGenerator("triton").propose(task, Context("draft", seed=0))
    verdict = evaluator.evaluate(task, draft)
    assert verdict.status is Status.PASSED, f"{draft.name}: {verdict.reason}"


# Long rows: the first draft is a cooperative kernel (above), whose programs wait on each other (only a GPU
# runs them side by side); the second is the template that reads each row twice.
@pytest.mark.parametrize(("name", "first", "second"), [
    ("norm_instancenorm", "triton.norm_cooperative", "triton.norm"),
    ("norm_groupnorm", "triton.norm_cooperative", "triton.group_norm"),
    ("softmax_log_softmax", "triton.softmax_cooperative", "triton.row_reduce")])
def test_long_rows_draft_the_cooperative_kernel_first_and_the_second_passes(evaluator, name: str, first: str,
                                                                            second: str) -> None:
    task = load_task(BUILTIN / f"{name}.py")
    drafted = ExpertGenerator("triton").propose(task, Context("draft", seed=0))[0]
    (draft,) = ExpertGenerator("triton").propose(task, Context("draft", seed=0, ordinal=1))
    assert (drafted.metadata["template"], draft.metadata["template"]) == (first, second)
    verdict = evaluator.evaluate(task, draft)
    assert verdict.status is Status.PASSED, f"{draft.name}: {verdict.reason}"


@pytest.mark.parametrize(("template", "cols", "forward", "init", "args", "inputs"), [
    # Rows of 8 chunks of 3760 (3750 rounded up to 16; the last 3680) with a weight, a bias and an epilogue;
    # RMS norm of a residual sum.
    ("triton.norm_cooperative", 30000, "torch.relu(self.norm(x)) * 0.5",
     "self.norm = nn.LayerNorm(c); nn.init.uniform_(self.norm.weight, 0.5, 1.5); nn.init.normal_(self.norm.bias)",
     "x", "[torch.randn(rows, cols) * 3.0 + 2.0]"),
    ("triton.norm_cooperative", 30000, "self.norm(x + y)",
     "self.norm = nn.RMSNorm(c, eps=1e-6); nn.init.uniform_(self.norm.weight, 0.5, 1.5)",
     "x, y", "[torch.randn(rows, cols), torch.randn(rows, cols)]"),
    # Rows of 30001, which start 16-aligned only every 16th row (the edges before and after each row's aligned
    # interior): softmax with a prologue over the row and an epilogue; log-softmax of a sum of two inputs.
    ("triton.softmax_cooperative", 30001, "torch.softmax(x * 0.5 + self.bias, dim=-1) * 3.0",
     "self.bias = nn.Parameter(torch.randn(c))", "x", "[torch.randn(rows, cols) * 4.0]"),
    ("triton.softmax_cooperative", 30001, "torch.log_softmax(x / 0.7 + y, dim=-1) - 1.0", "pass",
     "x, y", "[torch.randn(rows, cols), torch.randn(rows, cols)]"),
])
def test_the_cooperative_kernels_pass_with_a_prologue_and_an_epilogue(evaluator, tmp_path: Path, template: str,
                                                                       cols: int, forward: str, init: str,
                                                                       args: str, inputs: str) -> None:
    from expert_tasks import analysis_of, write_task

    from kernelwright.candidate import Candidate
    from kernelwright.generate.expert.templates import all_templates, defaults

    path = write_task(tmp_path, "long_rows", forward, inputs, init, args, header=f"rows = 300\ncols = {cols}",
                      init_params="c")
    [cooperative] = [t for t in all_templates() if t.name == template]
    analysis = analysis_of(path)
    source = cooperative.render(analysis, defaults(cooperative, analysis))
    verdict = evaluator.evaluate(load_task(path), Candidate(source, "cooperative-long-rows"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
