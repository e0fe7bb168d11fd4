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
