"""ViT's patch embedding in the expert: the analysis (conv2d with stride = kernel, flatten, transpose, cat of
the class token, + position embedding -> PatchEmbed, or a one-line refusal naming why) and the Triton
template (triton.patch_embed): its candidates against the task's own reference under Triton's CPU
interpreter (in a fresh process), at small shapes, in fp32 and bf16; the static rules; the kernel compiled
for sm_90 (no GPU needed) where this Triton can; and the default candidate through the real evaluator.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from expert_tasks import analysis_of
from interpreted_task_runs import task_job

from kernelwright.evaluate.checks import check_candidate
from kernelwright.generate.expert.patterns import (
    Input,
    PatchEmbed,
    Unsupported,
    Weight,
)
from kernelwright.generate.expert.templates import all_templates, defaults
from kernelwright.task import load_task

BUILTIN = Path(__file__).parent.parent / "src" / "kernelwright" / "suites" / "builtin"
VIT = BUILTIN / "fused_vit_b16_patch_embed.py"
TEMPLATES = {t.name: t for t in all_templates()}


def write_task(folder: Path, name: str, init: str, forward: str, inputs: str = "torch.randn(b, 3, h, w)") -> Path:
    """A patch-embedding-like task over globals b, h, w (the jobs shrink them)."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(f"""\
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        b, h, w = 2, 40, 24


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                {init}

            def forward(self, x):
                return {forward}


        def get_inputs():
            return [{inputs}]


        def get_init_inputs():
            return []
        """))
    return path


def test_the_suite_task_is_a_patch_embedding() -> None:
    analysis = analysis_of(VIT)
    assert analysis.pattern == PatchEmbed(Input(0), Weight("proj.weight", "full"), Weight("proj.bias", "row"),
                                          Weight("cls_token", "row"), Weight("pos_embed", "full"), (16, 16),
                                          (512, 197, 768), (512, 3, 224, 224), "float32")
    assert (analysis.pattern.m, analysis.pattern.n, analysis.pattern.k) == (512 * 196, 768, 768)
    assert analysis.precision == "tf32"  # the reference's own fp32 convolution runs in TF32
    assert [t.name for t in all_templates() if t.matches(analysis)] == ["triton.patch_embed"]
    template = TEMPLATES["triton.patch_embed"]
    assert defaults(template, analysis) == {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32, "GROUP_M": 8,
                                            "num_warps": 8, "num_stages": 3, "precision": "tf32"}
    assert defaults(template, analysis_of(VIT, "bfloat16"))["BLOCK_K"] == 64
    source = template.render(analysis, defaults(template, analysis))
    assert source.count("kw_patch_embed[") == 1 and 'input_precision="tf32"' in source  # one launch


POS = "self.pos = nn.Parameter(torch.randn(1, {tokens}, 8))"
CLS = "self.cls = nn.Parameter(torch.randn(1, 1, 8))"


@pytest.mark.parametrize(("init", "forward", "refusal"), [
    # Overlapping patches: stride 2 under a 4 x 4 kernel (9 patches of an 8 x 8 image).
    (f"self.proj = nn.Conv2d(3, 8, 4, stride=2); {CLS}; {POS.format(tokens=10)}",
     "torch.cat((self.cls.expand(x.shape[0], -1, -1), self.proj(x).flatten(2).transpose(1, 2)), dim=1) + self.pos",
     r"conv2d \(proj\) with kernel \(4, 4\), stride \(2, 2\), padding \(0, 0\).*stride equal to the kernel"),
    # Padding: 4 patches of the padded image.
    (f"self.proj = nn.Conv2d(3, 8, 4, stride=4, padding=1); {CLS}; {POS.format(tokens=5)}",
     "torch.cat((self.cls.expand(x.shape[0], -1, -1), self.proj(x).flatten(2).transpose(1, 2)), dim=1) + self.pos",
     r"padding \(1, 1\).*the expert writes a patch embedding as a GEMM"),
    # The class token after the patches.
    (f"self.proj = nn.Conv2d(3, 8, 4, stride=4); {CLS}; {POS.format(tokens=5)}",
     "torch.cat((self.proj(x).flatten(2).transpose(1, 2), self.cls.expand(x.shape[0], -1, -1)), dim=1) + self.pos",
     r"cat of other than a parameter expanded over the batch, then conv2d\(x\).flatten\(2\).transpose\(1, 2\)"),
    # No position embedding.
    (f"self.proj = nn.Conv2d(3, 8, 4, stride=4); {CLS}",
     "torch.cat((self.cls.expand(x.shape[0], -1, -1), self.proj(x).flatten(2).transpose(1, 2)), dim=1)",
     r"cat with a convolution other than as a patch embedding's"),
])
def test_other_patch_embeddings_are_refused_naming_why(tmp_path: Path, init: str, forward: str, refusal: str) -> None:
    path = write_task(tmp_path, "refused", init, forward, "torch.randn(2, 3, 8, 8)")
    with pytest.raises(Unsupported, match=refusal) as refused:
        analysis_of(path)
    assert "\n" not in str(refused.value)


def jobs(folder: Path) -> list[dict[str, Any]]:
    """The suite task at small shapes (a 40-pixel image leaves 8 pixels out, as the convolution does) and a
    variant (F.conv2d without a bias, a 40 x 24 image, permute, the position embedding added in front), at
    the defaults and a point of small blocks (and IEEE fp32), in fp32 and bf16."""
    variant = write_task(
        folder, "variant", "self.w = nn.Parameter(torch.randn(8, 3, 8, 8) * 0.1); "
                           "self.cls = nn.Parameter(torch.randn(8)); self.pos = nn.Parameter(torch.randn(1 + 15, 8))",
        "self.pos + torch.cat([self.cls.view(1, 1, -1).expand(x.shape[0], 1, 8), "
        "F.conv2d(x, self.w, stride=8).flatten(2).permute(0, 2, 1)], 1)")
    shapes = {VIT: [{"batch": 2, "image_size": 48, "patch_size": 16, "embed_dim": 40},
                    {"batch": 3, "image_size": 40, "patch_size": 16, "embed_dim": 24}],
              variant: [{"b": 3, "h": 40, "w": 24}]}
    found = []
    for path, globals_ in shapes.items():
        for dtype in ("float32", "bfloat16"):
            analysis = analysis_of(path, dtype)
            template = TEMPLATES["triton.patch_embed"]
            assert template.matches(analysis)
            first = defaults(template, analysis)
            small = {**first, "BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 1}
            small |= {"precision": "ieee"} if "precision" in first else {}
            found += [task_job(path, analysis, template.name, params, shape, dtype)
                      for params in (first, small) for shape in globals_]
    return found


def test_candidates_keep_the_static_rules(tmp_path: Path) -> None:
    for job in jobs(tmp_path):
        report = check_candidate(TEMPLATES[job["template"]].render(job["analysis"], job["params"]))
        assert report.ok and report.backends == {"triton"}, (job["params"], report.summary())


def test_candidates_compute_the_task_s_reference_under_the_interpreter(tmp_path: Path) -> None:
    from interpreted_task_runs import run_task_jobs

    pytest.importorskip("triton")
    batch = jobs(tmp_path)
    failures = [outcome for outcome in run_task_jobs(batch) if outcome is not None]
    assert not failures, "\n".join(failures)


H100_SMEM = 232448  # bytes of shared memory one block may use on sm_90


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_kernel_compiles_for_sm90_pipelined_on_tensor_cores(sm90_compiler, tmp_path: Path, dtype: str) -> None:
    """At the suite's shapes (launched on the meta device, compiled as such a launch specializes it): one
    launch, within the shared memory, its loads asynchronous copies, its products wgmma."""
    import importlib.util

    import torch
    from sm90_launches import compile_for_sm90, record_launches

    analysis = analysis_of(VIT, dtype)
    template = TEMPLATES["triton.patch_embed"]
    path = tmp_path / f"candidate_{dtype}.py"  # Triton reads a kernel's source from its file
    path.write_text(template.render(analysis, defaults(template, analysis)))
    spec = importlib.util.spec_from_file_location(f"patch_embed_candidate_{dtype}", path)
    candidate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(candidate)
    launches = record_launches(candidate, ("kw_patch_embed",))
    kind = getattr(torch, dtype)
    with torch.device("meta"):
        candidate.ModelNew(224, 16, 768).to(kind)(torch.empty(512, 3, 224, 224, dtype=kind))
    [launch] = launches
    kernel = compile_for_sm90(launch)
    assert kernel.metadata.shared <= H100_SMEM and "async_copy" in kernel.asm["ttgir"] and "wgmma" in kernel.asm["ptx"]


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from interpreted_evaluation import quick_evaluator

    yield from quick_evaluator(tmp_path_factory)


def test_the_default_candidate_passes_the_evaluator(evaluator: Any, tmp_path: Path) -> None:
    from interpreted_evaluation import small_suite_copy

    from kernelwright.candidate import Candidate
    from kernelwright.evaluate.verdict import Status

    path = small_suite_copy("fused_vit_b16_patch_embed", tmp_path, {"batch": 2, "image_size": 48, "embed_dim": 40},
                            {"batch": 1, "image_size": 40, "patch_size": 16, "embed_dim": 24})
    analysis = analysis_of(path)
    template = TEMPLATES["triton.patch_embed"]
    source = template.render(analysis, defaults(template, analysis))
    verdict = evaluator.evaluate(load_task(path), Candidate(source, "triton.patch_embed-vit"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
    assert verdict.candidate["backends"] == ["triton"]
