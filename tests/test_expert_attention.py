"""Attention in the expert generator: the analysis of the built-in attention tasks and of the other forms
it recognizes (and what it refuses, and why); the Triton templates' spaces and sources; their candidates
against a reference under Triton's CPU interpreter, at the corners of their spaces, on sequences that
are not multiples of the blocks, causal or not, grouped or not, in fp32 and bf16; and their kernels
compiled for sm_90 (no GPU needed) where this Triton can.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest
from attention_runs import BUILTIN, IMPORTS, INIT, run_jobs
from expert_tasks import analysis_of

from kernelwright.evaluate.checks import check_candidate
from kernelwright.generate.expert.patterns import Analysis, Attention, Input, Unsupported
from kernelwright.generate.expert.templates import all_templates, defaults, triton_attention
from kernelwright.task import load_task

Q, K, V = Input(0), Input(1), Input(2)
FLASH, DECODE = triton_attention.FlashAttentionTemplate(), triton_attention.DecodeAttentionTemplate()


def attention(causal: bool, scale: float | None, shape: tuple[int, ...], dtype: str = "bfloat16",
              kv_heads: int | None = None, rounds: bool = False) -> Attention:
    return Attention(Q, K, V, causal, scale, shape, dtype, shape[1] if kv_heads is None else kv_heads, rounds)


# -- the analysis ---------------------------------------------------------------------------------------

# sdpa computes its scores in fp32; the written-out forms hold them in bf16 (rounds_scores).
SUITE = {
    "attention_gpt2xl_sdpa": attention(True, None, (64, 25, 1024, 1024, 64)),
    "attention_llama3_causal": attention(True, None, (2, 32, 2048, 2048, 128), kv_heads=8, rounds=True),
    "attention_llama3_decode": attention(False, None, (32, 32, 1, 4096, 128), kv_heads=8, rounds=True),
    "attention_vit_b16": attention(False, None, (512, 12, 197, 197, 64), rounds=True),
}


@pytest.mark.parametrize("name", sorted(SUITE))
def test_the_built_in_attention_tasks_are_attention(name: str) -> None:
    analysis = analysis_of(BUILTIN / f"{name}.py")
    assert analysis.pattern == SUITE[name]
    assert analysis.outputs_fp32 and analysis.precision == "bf16"


def write_task(tmp_path: Path, body: str, init: str = "pass", shapes: str = "(2, 4, 24, 16), (2, 4, 24, 16), "
               "(2, 4, 24, 16)", args: str = "q, k, v") -> Path:
    """A task whose forward is `body` over `args` (random inputs of `shapes`); `init` after super().__init__()."""
    source = textwrap.dedent("""\
        import math

        import torch
        import torch.nn as nn
        import torch.nn.functional as F


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
        {init}

            def forward(self, {args}):
        {body}


        def get_inputs():
            return [torch.randn(*shape) for shape in [{shapes}]]


        def get_init_inputs():
            return []
        """).format(init=textwrap.indent(init, " " * 8), body=textwrap.indent(textwrap.dedent(body), " " * 8),
                    args=args, shapes=shapes)
    path = tmp_path / "task.py"
    path.write_text(source)
    return path


FORMS = {
    # nanoGPT's, with a buffer of the sequence's size (torch.fx cannot slice a buffer by a traced length):
    # the buffer is built again on the CPU to be read; the scale comes from k's shape.
    "buffer_mask": ("""\
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        return att @ v""", 'self.register_buffer("bias", torch.tril(torch.ones(24, 24)).view(1, 1, 24, 24))',
        attention(True, None, (2, 4, 24, 24, 16), "float32")),
    # A boolean mask from the scores' shape through torch.where, a fixed scale, casts around the softmax.
    "where_mask": ("""\
        s = torch.matmul(q, k.transpose(-1, -2)) * 0.1
        keep = torch.ones((s.shape[-2], s.shape[-1]), dtype=torch.bool, device=q.device).tril()
        s = torch.where(keep, s, float("-inf"))
        return torch.softmax(s.float(), dim=-1).to(q.dtype) @ v""", "pass",
        attention(True, 0.1, (2, 4, 24, 24, 16), "float32")),
    "sdpa_gqa_scale": ("return F.scaled_dot_product_attention(q, k, v, scale=0.125, enable_gqa=True)", "pass",
                       attention(False, 0.125, (2, 4, 24, 24, 16), "float32", kv_heads=2)),
    "sdpa_bool_mask": ("""\
        mask = torch.ones((q.shape[-2], k.shape[-2]), dtype=torch.bool, device=q.device).tril()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)""", "pass",
        attention(True, None, (2, 4, 24, 24, 16), "float32")),
    # Grouped heads by repeat_interleave (its count from the shapes), q scaled before the product.
    "repeat_interleave": ("""\
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = torch.repeat_interleave(v, 2, dim=-3)
        return (q / 4.0 @ k.mT).softmax(-1) @ v""", "pass",
        attention(False, 0.25, (2, 4, 24, 24, 16), "float32", kv_heads=2)),
    "bmm_3d": ("return torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)) / 8.0, dim=-1), v)", "pass",
               attention(False, 0.125, (1, 6, 24, 24, 16), "float32")),
}
FORM_SHAPES = {"sdpa_gqa_scale": "(2, 4, 24, 16), (2, 2, 24, 16), (2, 2, 24, 16)",
               "repeat_interleave": "(2, 4, 24, 16), (2, 2, 24, 16), (2, 2, 24, 16)",
               "bmm_3d": "(6, 24, 16), (6, 24, 16), (6, 24, 16)"}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_other_forms_of_attention_are_recognized(tmp_path: Path, name: str) -> None:
    body, init, expected = FORMS[name]
    path = write_task(tmp_path, body, init, FORM_SHAPES.get(name, "(2, 4, 24, 16), (2, 4, 24, 16), (2, 4, 24, 16)"))
    assert analysis_of(path).pattern == expected


SCORES = "s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
TRIU = "torch.ones(24, 24, dtype=torch.bool, device=q.device).triu({})"
REFUSED = {
    "dropout": ("return F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)", "pass", "q, k, v", "without dropout"),
    "not_causal": (SCORES + f"return s.masked_fill({TRIU.format(2)}, float('-inf')).softmax(-1) @ v", "pass",
                   "q, k, v", r"mask \(masked_fill\) that is not one causal mask"),
    "two_masks": (SCORES + f"s = s.masked_fill({TRIU.format(1)}, float('-inf'))\n"
                  f"return s.masked_fill({TRIU.format(1)}, float('-inf')).softmax(-1) @ v", "pass", "q, k, v",
                  "a second mask"),
    "zero_fill": (SCORES + f"return s.masked_fill({TRIU.format(1)}, 0.0).softmax(-1) @ v", "pass", "q, k, v",
                  "masked scores set to 0.0"),
    "shape_scale": ("return (q @ k.transpose(-2, -1) / q.shape[-1]).softmax(-1) @ v", "pass", "q, k, v",
                    "computed from the shapes"),
    "softmax_dim": (SCORES + "return s.softmax(-2) @ v", "pass", "q, k, v", "softmax over dim -2"),
    "input_mask": ("return F.scaled_dot_product_attention(q, k, v, attn_mask=m)", "pass", "q, k, v, m",
                   "depends on the input m"),
    "projected_q": ("return F.scaled_dot_product_attention(self.proj(q), k, v)", "self.proj = nn.Linear(16, 16)",
                    "q, k, v", "attention's query computed by linear"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_other_attention_is_refused_saying_why(tmp_path: Path, name: str) -> None:
    body, init, args, reason = REFUSED[name]
    shapes = "(2, 4, 24, 16), (2, 4, 24, 16), (2, 4, 24, 16)" + (", (24, 24)" if args.endswith("m") else "")
    with pytest.raises(Unsupported, match=reason) as refused:
        analysis_of(write_task(tmp_path, body, init, shapes, args))
    assert "\n" not in str(refused.value)


# -- the templates: matching, spaces, sources -----------------------------------------------------------

def suite_analysis(name: str, precision: str | None = None) -> Analysis:
    pattern = SUITE[name]
    args = ("q", "k_cache", "v_cache") if "decode" in name else ("q", "k", "v")
    return Analysis(pattern, args, INIT, IMPORTS, outputs_fp32=True, precision=precision)


def test_the_decode_kernel_is_the_first_draft_for_a_decoding_step_only() -> None:
    for name in SUITE:
        matching = [t.name for t in all_templates() if t.matches(suite_analysis(name))]
        expected = ["triton.attention_decode", "triton.attention"] if "decode" in name else ["triton.attention"]
        assert matching == expected, name


def test_defaults_follow_the_head_dim_the_dtype_and_the_machine() -> None:
    llama = defaults(FLASH, suite_analysis("attention_llama3_causal"))
    assert llama == {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3}
    assert defaults(FLASH, suite_analysis("attention_vit_b16"))["num_warps"] == 4  # head dim 64
    # 256 (batch, kv head) programs on 132 SMs: the keys split 4 ways; the 4 query heads of a group are 16 rows.
    sdpa_decode = Analysis(attention(False, None, (32, 32, 1, 4096, 128), kv_heads=8), ("q", "k", "v"), INIT, IMPORTS)
    assert (defaults(DECODE, sdpa_decode)["SPLIT"], defaults(DECODE, sdpa_decode)["BLOCK_M"]) == (4, 16)
    # Llama's written-out decode rounds its scores; its splits write them out (kw_decode_scores), as many.
    assert defaults(DECODE, suite_analysis("attention_llama3_decode"))["SPLIT"] == 4
    few = Analysis(attention(False, None, (1, 2, 500, 500, 64)), ("q", "k", "v"), INIT, IMPORTS)
    assert defaults(FLASH, few)["BLOCK_M"] == 32  # 2 heads: smaller row blocks, more programs


def test_fp32_multiplies_in_ieee_unless_the_tolerance_admits_tf32() -> None:
    shape = (2, 4, 100, 100, 64)
    strict = Analysis(attention(True, None, shape, "float32"), ("q", "k", "v"), INIT, IMPORTS, precision="fp32")
    loose = Analysis(attention(True, None, shape, "float32"), ("q", "k", "v"), INIT, IMPORTS, precision="tf32")
    assert FLASH.space(strict)["precision"] == ("ieee",) and DECODE.space(loose)["precision"] == ("tf32", "ieee")
    assert 'input_precision="ieee"' in FLASH.render(strict, defaults(FLASH, strict))
    assert "precision" not in FLASH.space(suite_analysis("attention_vit_b16"))


def test_every_point_renders_its_own_source_and_sources_pass_the_static_checks() -> None:
    for template, name in ((FLASH, "attention_gpt2xl_sdpa"), (DECODE, "attention_llama3_decode")):
        analysis = suite_analysis(name)
        space = template.space(analysis)
        points = [dict(zip(space, combo)) for combo in itertools.product(*space.values())]
        sources = {template.render(analysis, params) for params in points}
        assert len(sources) == len(points), template.name
        for params in (points[0], points[-1]):
            source = template.render(analysis, params)
            assert check_candidate(source).ok, check_candidate(source).violations
            assert "class ModelNew(nn.Module):\n    def __init__(self):" in source and "class Model(" not in source


def test_attention_the_kernels_cannot_hold_does_not_match() -> None:
    wide = Analysis(attention(False, None, (1, 2, 64, 64, 512)), ("q", "k", "v"), INIT, IMPORTS)
    long = Analysis(attention(False, None, (1, 2, 64, 64, 64)), ("q", "k", "v"), INIT, IMPORTS)
    assert not FLASH.matches(wide) and not DECODE.matches(wide)
    assert FLASH.matches(long) and not DECODE.matches(long)


# -- candidates under the interpreter -------------------------------------------------------------------

def job(template: Any, shape: tuple[int, ...], causal: bool, dtype: str, params: dict[str, Any],
        scale: float | None = None, precision: str | None = None, task: str | None = None) -> dict[str, Any]:
    batch, heads, kv_heads, seq_q, seq_k, head_dim = shape
    rounds = task is not None and SUITE[task].rounds_scores
    pattern = attention(causal, scale, (batch, heads, seq_q, seq_k, head_dim), dtype, kv_heads, rounds)
    analysis = Analysis(pattern, ("q", "k", "v"), INIT, IMPORTS, precision=precision)
    return {"template": template.name, "params": {**defaults(template, analysis), **params}, "shape": list(shape),
            "causal": causal, "scale": scale, "dtype": dtype, "precision": precision, "task": task,
            "rounds": rounds}


def corners(template: Any, shape: tuple[int, ...], causal: bool, dtype: str, names: tuple[str, ...],
            **kw: Any) -> list[dict[str, Any]]:
    """The first and last values of the named parameters, in every combination (the rest at defaults)."""
    batch, heads, kv_heads, seq_q, seq_k, head_dim = shape
    space = template.space(Analysis(attention(causal, None, (batch, heads, seq_q, seq_k, head_dim), dtype, kv_heads),
                                    ("q", "k", "v"), INIT, IMPORTS, precision=kw.get("precision")))
    ends = [dict.fromkeys((space[n][0], space[n][-1])) for n in names]
    return [job(template, shape, causal, dtype, dict(zip(names, combo)), **kw) for combo in itertools.product(*ends)]


BLOCKS = ("BLOCK_M", "BLOCK_N")
# (batch, heads, kv heads, seq_q, seq_k, head dim): sequences that are no multiple of any block.
JOBS = {
    "flash_causal_fp32": corners(FLASH, (2, 2, 2, 37, 37, 64), True, "float32", BLOCKS)
    + [job(FLASH, (2, 2, 2, 37, 37, 64), True, "float32", {"BLOCK_M": 128, "BLOCK_N": 16})],
    # Fewer queries than keys: causal is aligned at the top left, as sdpa's is_causal.
    "flash_causal_short_queries_tf32": corners(FLASH, (1, 2, 2, 20, 51, 64), True, "float32", BLOCKS,
                                               precision="tf32"),
    "flash_causal_gqa_bf16": corners(FLASH, (1, 4, 2, 70, 70, 64), True, "bfloat16", BLOCKS)
    + [job(FLASH, (1, 4, 2, 70, 70, 64), True, "bfloat16", {"BLOCK_M": 16, "BLOCK_N": 128})],
    "flash_one_kv_head_bf16": corners(FLASH, (2, 2, 1, 17, 45, 64), False, "bfloat16", BLOCKS, scale=0.3),
    "flash_padded_head_dim_fp32": corners(FLASH, (1, 2, 2, 33, 33, 40), False, "float32", BLOCKS),
    "flash_head_dim_128_bf16": [job(FLASH, (1, 2, 2, 50, 50, 128), True, "bfloat16", {"BLOCK_M": 32, "BLOCK_N": 16})],
    "decode_gqa_bf16": corners(DECODE, (2, 4, 2, 1, 70, 64), False, "bfloat16", ("BLOCK_N", "SPLIT"))
    + [job(DECODE, (2, 4, 2, 1, 70, 64), False, "bfloat16", {"BLOCK_M": 64, "SPLIT": 1})],
    # Causal decode over a few queries: some splits hold keys that every row masks.
    "decode_causal_fp32": corners(DECODE, (2, 4, 2, 3, 45, 64), True, "float32", ("BLOCK_N", "SPLIT")),
    "decode_padded_head_dim_fp32": [job(DECODE, (1, 4, 4, 1, 33, 40), False, "float32", {"BLOCK_N": 16, "SPLIT": 2})],
    # Scores rounded as Llama's written-out forms round them: split, they are written out and read back.
    # Head dim 80: the second block of 64 columns is padded. Causal, seq 12 in blocks of 16: the second
    # split holds no key.
    "decode_rounded_bf16": corners(DECODE, (2, 8, 2, 1, 77, 128), False, "bfloat16", ("BLOCK_N", "SPLIT"),
                                   task="attention_llama3_decode")
    + [job(DECODE, (2, 8, 2, 1, 77, 80), False, "bfloat16", {"SPLIT": 4}, task="attention_llama3_decode")]
    + [job(DECODE, (1, 4, 2, 12, 12, 64), True, "bfloat16", {"BLOCK_N": 16, "SPLIT": 2},
           task="attention_llama3_causal")],
    # The built-in tasks' own forwards as the reference, at small shapes, with the default parameters; and
    # the corners of Llama's (its bf16 scores rounded as it rounds them).
    "suite_llama_corners": corners(FLASH, (1, 4, 2, 45, 45, 64), True, "bfloat16", BLOCKS,
                                   task="attention_llama3_causal"),
    "suite_forms": [job(FLASH, (1, 3, 3, 57, 57, 64), True, "bfloat16", {}, task="attention_gpt2xl_sdpa"),
                    job(FLASH, (1, 4, 2, 45, 45, 128), True, "bfloat16", {}, task="attention_llama3_causal"),
                    job(DECODE, (2, 8, 2, 1, 77, 128), False, "bfloat16", {}, task="attention_llama3_decode"),
                    job(FLASH, (2, 2, 2, 29, 29, 64), False, "bfloat16", {}, task="attention_vit_b16")],
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, list[str | None]]:
    """Every group's jobs in one interpreter process (imports cost seconds)."""
    flat = run_jobs([j for name in sorted(JOBS) for j in JOBS[name]])
    by_group, at = {}, 0
    for name in sorted(JOBS):
        by_group[name], at = flat[at:at + len(JOBS[name])], at + len(JOBS[name])
    return by_group


@pytest.mark.parametrize("name", sorted(JOBS))
def test_candidates_compute_the_reference_under_the_interpreter(outcomes: dict[str, list[str | None]],
                                                                name: str) -> None:
    failures = [outcome for outcome in outcomes[name] if outcome is not None]
    assert not failures, "\n".join(failures)


# -- the kernels compile for the GPU ------------------------------------------------------------------

def test_default_kernels_compile_for_sm90() -> None:
    """The interpreter runs Python, not the compiler: the bf16 defaults of both templates at the built-in
    Llama tasks' shapes, compiled to PTX for an H100 as their forwards launch them."""
    pytest.importorskip("triton")
    jobs = [job(FLASH, (2, 32, 8, 2048, 2048, 128), True, "bfloat16", {}, task="attention_llama3_causal"),
            job(DECODE, (32, 32, 8, 1, 4096, 128), False, "bfloat16", {}, task="attention_llama3_decode")]
    flash, decode = run_jobs(jobs, "compile")
    if flash == "unavailable":
        pytest.skip("this Triton has no CUDA backend to compile with")
    assert not isinstance(flash, str) and not isinstance(decode, str), flash if isinstance(flash, str) else decode
    assert [name for name, _ in flash] == ["kw_attention"]
    assert "wgmma.mma_async" in flash[0][1] and "cp.async" in flash[0][1]  # Hopper's tensor cores; loads pipelined
    # Llama's decode rounds its scores as written out: split over the keys they are written, then read back
    # with v by programs split over the head dim.
    assert [name for name, _ in decode] == ["kw_decode_scores", "kw_decode_values"]
    assert all("mma.sync" in ptx and "cp.async" in ptx for _, ptx in decode)


# -- through the generator and the evaluator ----------------------------------------------------------

SMALL_LLAMA = '''"""Llama's grouped causal attention, written out, at a size the interpreter runs in seconds."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

batch, heads, kv_heads, seq_len, head_dim = 1, 4, 2, 40, 64

KERNELWRIGHT = {
    "shape_variants": [{"batch": 2, "heads": 4, "kv_heads": 1, "seq_len": 23, "head_dim": 64}],
    "dtype": "bfloat16",
}


def repeat_kv(x, n_rep):
    b, h, s, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        n_rep = q.shape[1] // k.shape[1]
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        s = q.shape[2]
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(q.shape[3])
        mask = torch.full((s, s), float("-inf"), device=q.device, dtype=scores.dtype).triu(1)
        probs = F.softmax(scores + mask, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(probs, v)


def get_inputs():
    return [torch.randn(batch, heads, seq_len, head_dim), torch.randn(batch, kv_heads, seq_len, head_dim),
            torch.randn(batch, kv_heads, seq_len, head_dim)]


def get_init_inputs():
    return []
'''


def test_the_expert_s_first_draft_passes_the_evaluator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from private_cache import seed_ceilings

    from kernelwright.evaluate.evaluator import Evaluator
    from kernelwright.evaluate.options import EvalOptions
    from kernelwright.evaluate.verdict import Status
    from kernelwright.generate import get_generator
    from kernelwright.generate.base import Context
    from kernelwright.paths import CACHE_ENV

    pytest.importorskip("triton")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    seed_ceilings(tmp_path / "cache")
    (tmp_path / "llama_small.py").write_text(SMALL_LLAMA)
    task = load_task(tmp_path / "llama_small.py")
    (draft,) = get_generator("expert:triton").propose(task, Context("draft", seed=1))
    assert draft.metadata["template"] == "triton.attention"
    options = EvalOptions(device="cpu", interpret_triton=True, seeds=2, baselines=("eager",), timing_budget_s=0.1,
                          min_runs=2, max_runs=3, warmup_runs=1, spare_workers=0)
    with Evaluator(options) as evaluator:
        verdict = evaluator.evaluate(task, draft)
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{draft.source}"
