"""Tasks with weights through the real evaluator: every candidate gets the reference's weights, and the
candidate that is timed is built for the task's shapes, not for the last shape variant judged.

The task's weight has one entry per column, and its shape variant changes the columns, so a candidate
built for the variant cannot run on the task's shapes. The candidate creates its weight empty: only the
reference's weights, loaded into it, make it correct.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from private_cache import seed_ceilings
from test_evaluator import FAST

from kernelwright.candidate import Candidate
from kernelwright.evaluate.evaluator import Evaluator
from kernelwright.evaluate.options import EvalOptions
from kernelwright.evaluate.verdict import Status
from kernelwright.paths import CACHE_ENV
from kernelwright.task import Task, load_task

TASK = '''
import torch
import torch.nn as nn

rows = 16
cols = 64

KERNELWRIGHT = {"shape_variants": [%s]}


class Model(nn.Module):
    def __init__(self, cols):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cols))

    def forward(self, x):
        return x * self.weight


def get_inputs():
    return [torch.randn(rows, cols)]


def get_init_inputs():
    return [cols]
'''

CANDIDATE = '''
import torch
import torch.nn as nn

from kernelwright.backends import cpu

lib = cpu.compile(r"""
extern "C" void scale(const float* x, const float* w, float* y, long rows, long cols) {
    for (long r = 0; r < rows; ++r)
        for (long c = 0; c < cols; ++c)
            y[r * cols + c] = x[r * cols + c] * w[c];
}
""")


class ModelNew(nn.Module):
    def __init__(self, cols):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cols))

    def forward(self, x):
        # A kernel would read past the end of a weight built for fewer columns; say so instead.
        if self.weight.shape[0] != x.shape[1]:
            raise ValueError(f"weight built for {self.weight.shape[0]} columns, inputs have {x.shape[1]}")
        x = x.contiguous()
        y = torch.empty_like(x)
        lib.scale(x, self.weight, y, x.shape[0], x.shape[1])
        return y
'''


def write_task(folder: Path, variant: str) -> Task:
    path = folder / "scale.py"
    path.write_text(TASK % variant)
    return load_task(path)


def candidate(name: str) -> Candidate:
    # A comment makes a different source, so a different candidate, with the same (cached) C++.
    return Candidate(source=f"# {name}\n{CANDIDATE}", name=name)


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    """One evaluator for the module, with a private cache set before any worker is spawned (they inherit it)."""
    root = tmp_path_factory.mktemp("kernelwright-cache")
    seed_ceilings(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root))
        with Evaluator(EvalOptions(**FAST)) as ev:
            yield ev


def test_every_candidate_of_a_task_gets_its_weights(evaluator, tmp_path):
    """The reference's weights reach each candidate, not only the first of the task (a shared tensor
    sent as a file descriptor can be received once, so each candidate needs a fresh share)."""
    task = write_task(tmp_path, "")
    for name in ("first", "second", "third"):
        verdict = evaluator.evaluate(task, candidate(name))
        assert verdict.status is Status.PASSED, f"{name}: {verdict.reason}"


def test_the_candidate_timed_is_built_for_the_task_shapes(evaluator, tmp_path):
    task = write_task(tmp_path, '{"rows": 5, "cols": 33}')
    verdict = evaluator.evaluate(task, candidate("variant"))
    assert verdict.status is Status.PASSED, verdict.reason
    assert verdict.correctness["variants"] == 2  # the variant was judged, and before the timing
    assert verdict.custom_kernel_share > 0
