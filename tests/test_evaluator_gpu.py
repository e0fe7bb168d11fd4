"""The evaluator on a real GPU: one correct kernel per GPU backend passes, Triton cheats are caught."""

from pathlib import Path

import pytest
import torch

from kernelwright.candidate import load_candidate
from kernelwright.evaluate.evaluator import Evaluator
from kernelwright.evaluate.options import EvalOptions
from kernelwright.evaluate.verdict import Status
from kernelwright.task import load_task

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator(EvalOptions(baselines=("eager",), timing_budget_s=0.5)) as ev:
        yield ev


@pytest.mark.parametrize("candidate", ["triton_swish_residual.py", "nvrtc_swish_residual.py",
                                       "load_inline_swish_residual.py"])
def test_correct_kernel_per_backend_passes(evaluator, candidate):
    verdict = evaluator.evaluate(load_task(EXAMPLES / "tasks/swish_residual.py"),
                                 load_candidate(EXAMPLES / "candidates" / candidate))
    assert verdict.status is Status.PASSED, verdict.reason
    assert verdict.environment["device"] == "cuda"
    assert verdict.custom_kernel_share > 0.5
    assert 0 < verdict.speed_of_light["fraction"] <= 1 / 0.9


@pytest.mark.parametrize("candidate, status, says", [
    ("triton_unwritten.py", Status.INCORRECT, "outside tolerance"),
    ("triton_zero_inputs.py", Status.INCORRECT, "modified input 0"),
    ("triton_constant.py", Status.INCORRECT, "outside tolerance"),
    ("triton_empty.py", Status.INCORRECT, "has shape [0]"),
    ("triton_bf16.py", Status.INCORRECT, "outside tolerance"),
    ("triton_cached.py", Status.STATIC_REJECTED, "global-state"),
    ("side_stream.py", Status.STATIC_REJECTED, "streams-events"),
])
def test_triton_cheats_rejected_on_gpu(evaluator, candidate, status, says):
    verdict = evaluator.evaluate(load_task(FIXTURES / "tasks/gelu.py"), load_candidate(FIXTURES / "candidates" / candidate))
    assert verdict.status is status, verdict.reason
    assert says in verdict.reason
