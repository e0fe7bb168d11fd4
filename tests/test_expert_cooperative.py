"""triton.norm_cooperative and triton.softmax_cooperative: norms, softmax and log-softmax over long rows, K
programs per row holding their chunks in registers.

What they match (long rows only; the forms their kernels write); their candidates against the tasks'
references under the CPU interpreter, where each row gets one program (a program cannot wait there for a
later one); every point's source passes the static checks; and the launches a GPU makes, K programs per row
in chunks of CHUNK, compiled for sm_90 (statistics published in relaxed 64-bit slots; softmax's loads and
stores in vectors, rows aligned or not). What the interpreter's one program per row cannot show is checked
apart: that a GPU's K chunks and edges of a row cover each element once, and that a published slot is never
0 and unpacks bit for bit. The programs waiting on each other run on the GPU only (test_expert_gpu.py).
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from child_jobs import run_child, serve
from expert_tasks import analysis_of, write_task
from interpreted_task_runs import task_job

from kernelwright.evaluate.checks import check_candidate
from kernelwright.generate.expert.patterns import (
    Analysis,
    Call,
    Input,
    Norm,
    RowReduce,
    Value,
    Weight,
)
from kernelwright.generate.expert.templates import all_templates, defaults
from kernelwright.generate.expert.templates.triton_cooperative import MIN_COLS

ROOT = Path(__file__).parent.parent
BUILTIN = ROOT / "src" / "kernelwright" / "suites" / "builtin"
[TEMPLATE] = [t for t in all_templates() if t.name == "triton.norm_cooperative"]
[SOFTMAX] = [t for t in all_templates() if t.name == "triton.softmax_cooperative"]
X = Input(0)
# Main shapes with rows long enough to match; the jobs run at small shapes (LONG's globals overridden).
LONG = "rows = 4\ncols = 16384\nchannels = 8"


def norm(**changes: Any) -> Analysis:
    fields = {"kind": "layer", "prologue": X, "shape": (4, MIN_COLS), "dtype": "float32", "eps": 1e-5} | changes
    return Analysis(Norm(**fields), ("x",), "", "")


def test_it_matches_norms_over_long_rows_only() -> None:
    assert TEMPLATE.matches(analysis_of(BUILTIN / "norm_instancenorm.py"))  # 256 x 256 planes
    assert TEMPLATE.matches(analysis_of(BUILTIN / "norm_groupnorm.py"))  # groups of 4 x 512 x 512
    assert not TEMPLATE.matches(analysis_of(BUILTIN / "norm_layernorm.py"))  # rows one program holds
    assert TEMPLATE.matches(norm()) and TEMPLATE.matches(norm(kind="rms", weight=Weight("w", "row")))
    group = {"kind": "group", "shape": (2, 8, 64, 64), "dims": 3, "groups": 2}
    assert TEMPLATE.matches(norm(**group))
    refused = [norm(shape=(4, MIN_COLS - 1)), norm(**group | {"groups": 4}),  # 4 x 4096 per group: short
               norm(outputs=("value", "prologue")), norm(dtype="float64"),
               norm(kind="rms", bias=Weight("b", "row")),
               norm(**group, epilogue=Call("add", (Value(), Weight("b", "row")))),
               norm(**group | {"dims": 2})]
    for analysis in refused:
        assert not TEMPLATE.matches(analysis), analysis


def test_softmax_matches_softmax_and_log_softmax_over_long_rows_only() -> None:
    assert SOFTMAX.matches(analysis_of(BUILTIN / "softmax_vocab.py"))  # 128256 tokens
    assert SOFTMAX.matches(analysis_of(BUILTIN / "softmax_log_softmax.py"))  # 50257
    for name in ("reduce_logsumexp", "loss_cross_entropy", "norm_instancenorm"):  # one read already; not softmax
        assert not SOFTMAX.matches(analysis_of(BUILTIN / f"{name}.py")), name

    def softmax(**changes: Any) -> Analysis:
        fields = {"kind": "softmax", "prologue": X, "shape": (4, MIN_COLS), "dtype": "float32"} | changes
        return Analysis(RowReduce(**fields), ("x",), "", "")

    assert SOFTMAX.matches(softmax()) and SOFTMAX.matches(softmax(kind="log_softmax"))
    assert SOFTMAX.matches(softmax(epilogue=Call("mul", (Value(), Weight("w", "row")))))
    refused = [softmax(shape=(4, MIN_COLS - 1)), softmax(kind="max"), softmax(dtype="float64"),
               softmax(prologue=Weight("w", "scalar"))]  # no full-layout tensor to size the launch
    for analysis in refused:
        assert not SOFTMAX.matches(analysis), analysis


def test_every_point_renders_its_own_source_that_passes_the_static_checks() -> None:
    for template, name in ((TEMPLATE, "norm_instancenorm"), (TEMPLATE, "norm_groupnorm"),
                           (SOFTMAX, "softmax_vocab"), (SOFTMAX, "softmax_log_softmax")):
        analysis = analysis_of(BUILTIN / f"{name}.py")
        space = template.space(analysis)
        sources = {template.render(analysis, dict(zip(space, combo))) for combo in itertools.product(*space.values())}
        assert len(sources) == len(list(itertools.product(*space.values())))
        for source in sources:
            report = check_candidate(source)
            assert report.ok and report.backends == {"triton"}, (name, report.summary())


def custom_tasks(folder: Path) -> dict[str, Path]:
    """Layer norm with weight, bias and an epilogue; RMS norm of a residual sum with a weight; group norm of
    one channel per group (each chunk in one channel) without an affine map, and with one of two channels
    per group and an epilogue (a channel per element); softmax and log-softmax with prologues and epilogues."""
    def task(name: str, forward: str, init: str = "pass", args: str = "x", inputs: str = "[torch.randn(rows, cols)]",
             init_params: str = "cols", init_inputs: str = "[cols]") -> Path:
        return write_task(folder, name, forward, inputs, init, args, header=LONG, init_params=init_params,
                          init_inputs=init_inputs)

    image = "[torch.randn(rows, channels, 128, cols // 128) * 2.0 + 1.0]"
    return {
        "layer_affine": task("layer_affine", "torch.relu(self.norm(x)) * 0.5",
                             "self.norm = nn.LayerNorm(c)\n        "
                             "nn.init.uniform_(self.norm.weight, 0.5, 1.5); nn.init.normal_(self.norm.bias)",
                             inputs="[torch.randn(rows, cols) * 3.0 + 2.0]", init_params="c"),
        "rms_residual": task("rms_residual", "self.norm(x + y)",
                             "self.norm = nn.RMSNorm(c, eps=1e-6); nn.init.uniform_(self.norm.weight, 0.5, 1.5)",
                             "x, y", "[torch.randn(rows, cols), torch.randn(rows, cols)]", init_params="c"),
        "group_per_channel": task("group_per_channel", "self.norm(x)", "self.norm = nn.GroupNorm(c, c, affine=False)",
                                  inputs=image, init_params="c", init_inputs="[channels]"),
        "group_pairs": task("group_pairs", "torch.sigmoid(self.norm(x))",
                            "self.norm = nn.GroupNorm(c // 2, c, eps=1e-4)\n        "
                            "nn.init.uniform_(self.norm.weight, 0.5, 1.5); nn.init.normal_(self.norm.bias)",
                            inputs=image, init_params="c", init_inputs="[channels]"),
        # Softmax with a prologue over the row and an epilogue; log-softmax of a sum of two inputs.
        "softmax_bias": task("softmax_bias", "torch.softmax(x * 0.5 + self.bias, dim=-1) * 3.0",
                             "self.bias = nn.Parameter(torch.randn(c))",
                             init_params="c"),
        "log_softmax_sum": task("log_softmax_sum", "torch.log_softmax(x / 0.7 + y, dim=-1) - 1.0", args="x, y",
                                inputs="[torch.randn(rows, cols), torch.randn(rows, cols)]"),
    }


# Small shapes for the interpreter: rows not a power of two, the last chunk partial. Softmax: rows of 1000 and
# 600 elements start off a multiple of 16 (the edges), of 1024 and 640 on one (none).
SUITE_SHAPES = {"norm_instancenorm": {"batch": 2, "channels": 3, "height": 20, "width": 30},
                "norm_groupnorm": {"batch": 1, "channels": 64, "height": 9, "width": 11},
                "softmax_vocab": {"tokens": 3, "vocab": 1000},
                "softmax_log_softmax": {"batch": 2, "seq_len": 3, "vocab": 1024}}
CUSTOM_SHAPES = {"softmax_bias": {"rows": 3, "cols": 640}, "log_softmax_sum": {"rows": 3, "cols": 600}}
CUSTOM_SHAPE = {"rows": 3, "cols": 600}  # the channels as traced: the group count is fixed then


def jobs(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Per task: the defaults and the last point in fp32, the defaults in bf16."""
    tasks = {name: BUILTIN / f"{name}.py" for name in SUITE_SHAPES} | custom_tasks(folder)
    by_task = {}
    for name, path in tasks.items():
        analysis = analysis_of(path)
        template = SOFTMAX if "softmax" in name else TEMPLATE
        assert template.matches(analysis), name
        space = template.space(analysis)
        first, last = defaults(template, analysis), {key: values[-1] for key, values in space.items()}
        shape = SUITE_SHAPES.get(name) or CUSTOM_SHAPES.get(name, CUSTOM_SHAPE)
        by_task[name] = [task_job(path, analysis, template.name, params, shape, dtype)
                         for params, dtype in ((first, "float32"), (last, "float32"), (first, "bfloat16"))]
    return by_task


TASK_NAMES = [*SUITE_SHAPES, "layer_affine", "rms_residual", "group_per_channel", "group_pairs", "softmax_bias",
              "log_softmax_sum"]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str | None]]:
    from interpreted_task_runs import run_task_job_groups

    pytest.importorskip("triton")
    return run_task_job_groups(jobs(tmp_path_factory.mktemp("cooperative-tasks")))


@pytest.mark.parametrize("name", TASK_NAMES)
def test_candidates_compute_the_task_s_reference_under_the_interpreter(outcomes, name: str) -> None:
    failures = [outcome for outcome in outcomes[name] if outcome is not None]
    assert not failures, "\n".join(failures)
    assert len(outcomes[name]) == 3


# -- the chunks a GPU's K programs take -----------------------------------------------------------------

# Appended to a softmax candidate: each (row, k) program counts the elements its kw_place gives it.
_COVER = """

@triton.jit
def kw_cover(hits, cols, chunk, CHUNK: tl.constexpr):
    row = tl.program_id(0)
    k = tl.program_id(1)
    offs, c, inside, edge_offs, edge_c, edge_inside = kw_place(row, cols, k, chunk, tl.arange(0, CHUNK),
                                                               tl.arange(0, 32))
    tl.atomic_add(hits + offs, 1, mask=inside)
    tl.atomic_add(hits + edge_offs, 1, mask=edge_inside)
    tl.atomic_add(hits + offs, tl.where(c == offs - row.to(tl.int64) * cols, 0, 100), mask=inside)
"""


def _cover(job: dict[str, Any]) -> list[int]:
    """In the child: a row of `cols` elements in the candidate's chunks for `block`, five rows counted by
    kw_cover; the first few elements hit other than once."""
    import torch
    from sm90_launches import load_module

    module = load_module(Path(job["path"]))
    cols, block = job["cols"], job["block"]
    chunk, k = module.kw_chunks(cols, block)  # as the forward sizes them on a GPU
    hits = torch.zeros(5 * cols, dtype=torch.int32)
    module.kw_cover[(5, k)](hits, cols, chunk, CHUNK=block)
    return torch.nonzero(hits != 1).flatten()[:8].tolist()


def test_k_programs_chunks_and_edges_cover_each_element_of_a_row_once(tmp_path: Path) -> None:
    """The interpreter gives each row one program, so the K chunks of a row on a GPU are checked apart: for rows
    aligned or not, long or shorter than 16, every element lies in exactly one program's chunk or edge."""
    pytest.importorskip("triton")
    analysis = analysis_of(BUILTIN / "softmax_log_softmax.py")
    candidate = tmp_path / "covered.py"
    candidate.write_text(SOFTMAX.render(analysis, defaults(SOFTMAX, analysis)) + _COVER)
    shapes = [(50257, 4096), (50257, 2048), (30001, 8192), (16400, 4096), (128256, 4096), (1000, 256), (1008, 64),
              (33, 16), (17, 16), (13, 16), (3, 16)]
    batch = [{"path": str(candidate), "cols": cols, "block": block} for cols, block in shapes]
    outcomes = run_child(__file__, "interpret", batch)
    assert all(outcome == [] for outcome in outcomes), [(job, outcome) for job, outcome in zip(batch, outcomes)
                                                        if outcome != []]


# Appended to a candidate: kw_pack's slots for pairs (a, b), and what kw_unpack makes of them.
_ROUNDTRIP = """

@triton.jit
def kw_roundtrip(a, b, slots, a_back, b_back, N: tl.constexpr):
    i = tl.arange(0, N)
    slot = kw_pack(tl.load(a + i), tl.load(b + i))
    tl.store(slots + i, slot)
    got_a, got_b = kw_unpack(slot)
    tl.store(a_back + i, got_a)
    tl.store(b_back + i, got_b)
"""


def _roundtrip(job: dict[str, Any]) -> dict[str, list[int]]:
    """In the child: the slots and the bits unpacked from them, for the pairs of the job."""
    import torch
    from sm90_launches import load_module

    module = load_module(Path(job["path"]))
    a, b = (torch.tensor(job[key], dtype=torch.float32) for key in ("a", "b"))
    slots = torch.empty(len(a), dtype=torch.int64)
    a_back, b_back = torch.empty_like(a), torch.empty_like(b)
    module.kw_roundtrip[(1,)](a, b, slots, a_back, b_back, N=len(a))
    return {"slots": slots.tolist(), "a": a_back.view(torch.int32).tolist(), "b": b_back.view(torch.int32).tolist()}


def test_a_published_slot_is_never_zero_and_gives_back_both_statistics_bit_for_bit(tmp_path: Path) -> None:
    """Waiters take a slot of 0 for one not yet written: every pair a program can publish (a any
    float, b a sum of squares or exponentials: 0 or more, or NaN) must pack to a nonzero slot and unpack exactly."""
    import torch

    pytest.importorskip("triton")
    analysis = analysis_of(BUILTIN / "norm_instancenorm.py")
    candidate = tmp_path / "packed.py"
    candidate.write_text(TEMPLATE.render(analysis, defaults(TEMPLATE, analysis)) + _ROUNDTRIP)
    specials = [0.0, -0.0, 1.0, -2.5, 1e-45, -1e-45, 3.4e38, -3.4e38, float("inf"), float("-inf"), float("nan"), 7e-3]
    pairs = [(a, b) for a in specials for b in (0.0, 1e-45, 1.0, 3.4e38, float("inf"), float("nan"), 123.25, 0.5)]
    pairs += [(a, 0.0) for a in torch.randn(8).tolist()]
    a, b = ([pair[i] for pair in pairs] + [0.0] * (128 - len(pairs)) for i in (0, 1))
    [got] = run_child(__file__, "interpret-pack", [{"path": str(candidate), "a": a, "b": b}])
    assert all(slot != 0 for slot in got["slots"])
    def bits(values: list[float]) -> list[int]:
        return torch.tensor(values, dtype=torch.float32).view(torch.int32).tolist()
    assert got["a"] == bits(a) and got["b"] == bits(b)


# -- compiled for an H100 -------------------------------------------------------------------------------

def as_on_a_gpu(launch: Any, block: int) -> Any:
    """A launch recorded on the meta device (which, as the interpreter, gets one program per row) made the
    GPU's: rows in the chunks of at most `block` elements that the candidate's own kw_chunks gives."""
    import triton

    kernel, args, kwargs = launch
    named = dict(zip(kernel.arg_names, args))
    chunk, k = kernel.fn.__globals__["kw_chunks"](named["cols"], block)  # the candidate module's
    named |= {"chunk": chunk, "K": k}
    gpu = {"CHUNK": block, "KP": triton.next_power_of_2(k)}
    if "EVEN" in kwargs:  # the norm kernel's: every chunk whole
        gpu["EVEN"] = chunk == block and named["cols"] % block == 0
    return kernel, tuple(named.values()), kwargs | gpu


@pytest.mark.parametrize("name", ["norm_instancenorm", "norm_groupnorm", "softmax_vocab", "softmax_log_softmax"])
def test_the_gpu_launches_compile_for_sm90(sm90_compiler, tmp_path: Path, name: str) -> None:
    import torch
    from sm90_launches import compile_for_sm90, launches_of, load_module

    template = SOFTMAX if "softmax" in name else TEMPLATE
    analysis = analysis_of(BUILTIN / f"{name}.py")
    task = load_module(BUILTIN / f"{name}.py")
    space = template.space(analysis)
    compiled = 0
    for params in (defaults(template, analysis), {key: values[-1] for key, values in space.items()}):
        for dtype in (torch.float32, torch.bfloat16):
            launches = launches_of(template.render(analysis, params), task, ("kw_coop",), dtype, tmp_path)
            # The launch that sizes the grid (no rows), then the real one.
            assert [launch[1][launch[0].arg_names.index("rows")] > 0 for launch in launches] == [False, True]
            for launch in launches:
                kernel = compile_for_sm90(as_on_a_gpu(launch, int(params["CHUNK"])))
                compiled += 1
                ptx = kernel.asm["ptx"]
                # A chunk's statistics published in one relaxed 64-bit exchange, with no release fence (which
                # would wait for the program's output stores).
                assert "atom.global.gpu.relaxed.exch.b64" in ptx and "release" not in ptx, (name, params)
                if template is TEMPLATE:
                    # Rows of 2^16 and 2^20 elements are whole chunks: the chunk's loads and stores are guarded by
                    # no predicate but a constant true one (a real mask's selects made group norm spill).
                    guards = set(re.findall(r"@(%p\d+) (?:ld|st)\.global\.v", ptx))
                    assert all(re.search(rf"mov\.pred\s+{guard}, -1;", ptx) for guard in guards), (name, params)
                    assert "ld.global.v4" in ptx and "st.global.v4" in ptx, (name, params, dtype)
                if template is SOFTMAX:
                    # Chunks of the rows' 16-aligned interiors: 128-bit loads and stores, also where rows of
                    # 50257 elements start anywhere.
                    assert "ld.global.v4" in ptx and "st.global.v4" in ptx, (name, params, dtype)
    assert compiled == 8


if __name__ == "__main__":
    serve(sys.argv[1], {"interpret": _cover, "interpret-pack": _roundtrip})
