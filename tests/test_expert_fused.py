"""Several outputs in the expert: the Triton templates for projections of one input (triton.projections,
the suite's q, k, v projections split into heads) and for rotary embeddings (triton.rotary, the suite's
rope over q and k): their candidates against the tasks' own references under Triton's CPU interpreter (in
a fresh process), at the corners of their spaces and small shapes, in fp32 and bf16; the static rules;
their kernels compiled for sm_90 (no GPU needed) where this Triton can; and the default candidates
through the real evaluator.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from expert_tasks import analysis_of
from interpreted_evaluation import quick_evaluator, small_suite_copy
from interpreted_task_runs import task_job

from kernelwright.evaluate.checks import check_candidate
from kernelwright.generate.expert.patterns import Analysis
from kernelwright.generate.expert.templates import all_templates, defaults
from kernelwright.task import load_task

BUILTIN = Path(__file__).parent.parent / "src" / "kernelwright" / "suites" / "builtin"
TEMPLATES = {t.name: t for t in all_templates()}
# num_warps and num_stages do nothing in the interpreter: they stay at their defaults there.
INERT = ("num_warps", "num_stages")


def write_task(folder: Path, name: str, init: str, forward: str, inputs: str, args: str = "x") -> Path:
    """A task over globals b, s and d (the jobs shrink them): `init` after super().__init__(), `return forward`."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(f"""\
        import torch
        import torch.nn as nn

        b, s, d = 2, 48, 64


        def rotate_half(x):
            x1, x2 = x.chunk(2, dim=-1)
            return torch.cat((-x2, x1), dim=-1)


        class Model(nn.Module):
            def __init__(self, d, s):
                super().__init__()
                {init}

            def forward(self, {args}):
                return {forward}


        def get_inputs():
            return {inputs}


        def get_init_inputs():
            return [d, s]
        """))
    return path


def custom_tasks(folder: Path) -> dict[str, Path]:
    """What the suite does not hold: biased projections viewed by permute and reshape (a Qwen-like block),
    products by [K, N] weights, rotary embeddings as one output over a 3-D input with cos and sin buffers
    broadcast over the batch, and two outputs rotating two inputs (one of them twice)."""
    return {
        "biased_projections": write_task(
            folder, "biased_projections", "self.q = nn.Linear(d, 2 * d); self.k = nn.Linear(d, d // 2)",
            "self.q(x).view(x.shape[0], x.shape[1], -1, 16).permute(0, 2, 1, 3), self.k(x).reshape(-1, d // 2)",
            "[torch.randn(b, s, d)]"),
        "kn_products": write_task(
            folder, "kn_products", "self.wq = nn.Parameter(torch.randn(d, 24) * d ** -0.5); "
                                   "self.wk = nn.Parameter(torch.randn(d, 40) * d ** -0.5)",
            "x @ self.wq, torch.matmul(x, self.wk).transpose(0, 1)", "[torch.randn(s, d)]"),
        "rope_buffers": write_task(
            folder, "rope_buffers", "self.register_buffer('cos', torch.randn(s, d).cos()); "
                                    "self.register_buffer('sin', torch.randn(s, d).sin())",
            "x * self.cos + rotate_half(x) * self.sin", "[torch.randn(b, s, d)]"),
        "rope_two": write_task(
            folder, "rope_two", "pass", "rotate_half(x) * 0.5 + y, torch.sigmoid(rotate_half(rotate_half(y))) * x",
            "[torch.randn(b, s, d), torch.randn(b, s, d)]", args="x, y"),
    }


# Per task: the shapes (task globals) each corner runs at, in each of DTYPES. The suite's head_dim stays 128:
# the projections' views are the task's, whose head_dim the trace read as a number.
SHAPES = {
    "fused_llama3_qkv_heads": [{"batch": 2, "seq_len": 5, "hidden": 40, "heads": 2, "kv_heads": 1, "head_dim": 128}],
    "fused_llama3_rope": [{"batch": 2, "heads": 3, "kv_heads": 1, "seq_len": 5, "head_dim": 128},
                          {"batch": 1, "heads": 4, "kv_heads": 2, "seq_len": 3, "head_dim": 24}],
    "biased_projections": [{"b": 2, "s": 5, "d": 64}],  # d stays: the trace read d // 2 as a number
    "kn_products": [{"s": 7, "d": 36}],
    "rope_buffers": [{"b": 3, "s": 5, "d": 20}],
    "rope_two": [{"b": 1, "s": 6, "d": 12}],
}
DTYPES = ("float32", "bfloat16")


def template_for(analysis: Analysis) -> Any:
    [template] = [t for t in all_templates() if t.backend == "triton" and t.matches(analysis)]
    return template


def corners(template: Any, analysis: Analysis) -> list[dict[str, Any]]:
    """The defaults, every parameter at its last value, and the defaults with one parameter at its last value."""
    space = template.space(analysis)
    first = {name: values[0] for name, values in space.items()}
    last = {name: values[0] if name in INERT else values[-1] for name, values in space.items()}
    points = [first, last, *({**first, name: values[-1]} for name, values in space.items() if name not in INERT)]
    return [dict(p) for p in dict.fromkeys(tuple(p.items()) for p in points)]


def jobs(folder: Path) -> dict[str, list[dict[str, Any]]]:
    tasks = {name: BUILTIN / f"{name}.py" for name in ("fused_llama3_qkv_heads", "fused_llama3_rope")}
    tasks |= custom_tasks(folder)
    by_task = {}
    for name, path in tasks.items():
        by_task[name] = []
        for dtype in DTYPES:
            analysis = analysis_of(path, dtype)
            template = template_for(analysis)
            by_task[name] += [task_job(path, analysis, template.name, params, shape, dtype)
                              for params in corners(template, analysis) for shape in SHAPES[name]]
    return by_task


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str | None]]:
    """Every task's jobs in one interpreter process."""
    from interpreted_task_runs import run_task_job_groups

    pytest.importorskip("triton")
    return run_task_job_groups(jobs(tmp_path_factory.mktemp("fused-tasks")))


@pytest.mark.parametrize("name", list(SHAPES))
def test_corners_compute_the_task_s_reference_under_the_interpreter(outcomes: dict[str, list[str | None]],
                                                                    name: str) -> None:
    failures = [outcome for outcome in outcomes[name] if outcome is not None]
    assert outcomes[name] and not failures, "\n".join(failures)


def test_each_task_has_its_template_and_the_candidates_keep_the_static_rules(tmp_path: Path) -> None:
    for name, its in jobs(tmp_path).items():
        expected = "triton.rotary" if "rope" in name else "triton.projections"
        assert {job["template"] for job in its} == {expected}, name
        for job in its:
            report = check_candidate(TEMPLATES[job["template"]].render(job["analysis"], job["params"]))
            assert report.ok and report.backends == {"triton"}, (name, job["params"], report.summary())


def test_the_qkv_candidate_reads_the_weights_in_place_and_returns_the_task_s_views() -> None:
    analysis = analysis_of(BUILTIN / "fused_llama3_qkv_heads.py")
    projections = TEMPLATES["triton.projections"]
    assert defaults(projections, analysis) == {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8,
                                               "num_warps": 8, "num_stages": 3}
    source = projections.render(analysis, defaults(projections, analysis))
    assert "self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)" in source
    assert "kw_b0 = self.q_proj.weight.contiguous()" in source and "torch.cat" not in source
    assert source.count("kw_projections[") == 1  # one launch for the three products
    assert "return kw_out0.view(x.shape[0], x.shape[1], -1, 128).transpose(1, 2), kw_out1.view(" in source


def test_q_and_k_share_one_rotary_kernel_launched_for_each() -> None:
    analysis = analysis_of(BUILTIN / "fused_llama3_rope.py")
    rotary = TEMPLATES["triton.rotary"]
    assert defaults(rotary, analysis) == {"BLOCK_R": 32, "order": "dim1", "num_warps": 4}  # 64-wide halves
    source = rotary.render(analysis, defaults(rotary, analysis))
    assert source.count("@triton.jit") == 1 and source.count("kw_rotary[") == 2
    assert "cos.unsqueeze(1).expand(q.shape)" in source and "return kw_out0, kw_out1" in source


# -- compiled for an H100 -------------------------------------------------------------------------------

H100_SMEM = 232448  # bytes of shared memory one block may use on sm_90


def compiled(name: str, shapes: list[tuple[int, ...]], folder: Path) -> list[tuple[int, bool, list[str]]]:
    """(shared memory bytes, loads pipelined?, global memory accesses) for each launch of the suite task's default
    candidate at these input shapes, compiled for sm_90 as such launches would specialize it."""
    import importlib.util
    import re

    import torch
    from sm90_launches import compile_for_sm90, record_launches

    task = load_task(BUILTIN / f"{name}.py")
    analysis = analysis_of(task.path)
    template = template_for(analysis)
    path = folder / f"{name}_candidate.py"  # Triton reads a kernel's source from its file
    path.write_text(template.render(analysis, defaults(template, analysis)))
    spec = importlib.util.spec_from_file_location(f"{name}_candidate", path)
    candidate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(candidate)
    launches = record_launches(candidate, ("kw_projections", "kw_rotary"))
    module: dict[str, Any] = {}
    exec(task.path.read_text(), module)
    with torch.device("meta"):
        model = candidate.ModelNew(*module["get_init_inputs"]()).to(torch.bfloat16)
        model(*[torch.empty(shape, dtype=torch.bfloat16) for shape in shapes])
    found = []
    for launch in launches:
        kernel = compile_for_sm90(launch)
        accesses = sorted(set(re.findall(r"(?:ld|st)\.global[\w.]*", kernel.asm["ptx"])))
        found.append((kernel.metadata.shared, "async_copy" in kernel.asm["ttgir"], accesses))
    return found


def test_kernels_compile_for_sm90_pipelined_and_vectorized(sm90_compiler, tmp_path: Path) -> None:
    """At the suite's shapes: the projections' one tile loop fits the shared memory and pipelines its loads;
    the rotary kernel loads and stores 16 bytes a thread at a time."""
    [(shared, pipelined, _)] = compiled("fused_llama3_qkv_heads", [(4, 2048, 4096)], tmp_path)
    assert shared <= H100_SMEM and pipelined
    rope = compiled("fused_llama3_rope", [(8, 32, 4096, 128), (8, 8, 4096, 128), (8, 4096, 128), (8, 4096, 128)],
                    tmp_path)
    assert [accesses for _, _, accesses in rope] == [["ld.global.v4.b32", "st.global.v4.b32"]] * 2  # q's and k's


# -- through the evaluator ------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from quick_evaluator(tmp_path_factory)


@pytest.mark.parametrize(("name", "main", "variant"), [
    ("fused_llama3_qkv_heads", {"batch": 2, "seq_len": 8, "hidden": 64, "heads": 2, "kv_heads": 1},
     {"batch": 1, "seq_len": 5, "hidden": 48, "heads": 1, "kv_heads": 1, "head_dim": 128}),
    ("fused_llama3_rope", {"batch": 2, "heads": 4, "kv_heads": 2, "seq_len": 16},
     {"batch": 1, "heads": 2, "kv_heads": 1, "seq_len": 7, "head_dim": 128}),
])
def test_the_default_candidates_pass_the_evaluator(evaluator: Any, tmp_path: Path, name: str, main: dict[str, int],
                                                   variant: dict[str, int]) -> None:
    from kernelwright.candidate import Candidate
    from kernelwright.evaluate.verdict import Status

    path = small_suite_copy(name, tmp_path, main, variant)
    analysis = analysis_of(path)
    template = template_for(analysis)
    source = template.render(analysis, defaults(template, analysis))
    verdict = evaluator.evaluate(load_task(path), Candidate(source, f"{template.name}-{name}"))
    assert verdict.status is Status.PASSED, f"{verdict.reason}\n{source}"
    assert verdict.candidate["backends"] == ["triton"]
