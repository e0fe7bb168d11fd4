"""Unit tests of the tolerance policy and comparison, the timing loop on the CPU, and the wire format."""

from __future__ import annotations

import math
import os
import pickle

import pytest
import torch

from kernelwright.evaluate import timing, wire
from kernelwright.evaluate.correctness import TOLERANCES, Tolerance, compare, tolerance_for

FP32 = tolerance_for("float32", None, set())
TF32 = tolerance_for("float32", None, {"tf32"})


# -- tolerance_for -----------------------------------------------------------------------------

def test_fp32_task_gets_the_fp32_tolerance():
    assert FP32 == Tolerance("fp32", 1e-4, 1e-4)
    assert tolerance_for("float64", None, set()).precision == "fp32"
    assert tolerance_for("float32", None, {"fp32"}).precision == "fp32"


def test_a_reference_computing_in_tf32_admits_tf32():
    assert TF32 == Tolerance("tf32", *TOLERANCES["tf32"])
    assert TF32.rtol > FP32.rtol and TF32.atol > FP32.atol


def test_the_lower_of_task_precision_and_reference_units_is_admitted():
    # The task admits bf16; the reference's tf32 is more precise, so bf16 stays.
    assert tolerance_for("float32", "bf16", {"tf32"}).precision == "bf16"
    # The task asks for fp16 arithmetic at most; its fp32 dtype does not tighten that.
    assert tolerance_for("float32", "fp16", set()) == Tolerance("fp16", 1e-2, 1e-2)
    # Units that are not arithmetic precisions are ignored.
    assert tolerance_for("float32", None, {"int8"}).precision == "fp32"


def test_explicit_atol_and_rtol_override_the_precision_defaults():
    tol = tolerance_for("float32", None, {"tf32"}, atol=1e-6, rtol=0.0)
    assert tol == Tolerance("tf32", 0.0, 1e-6)  # 0.0 is an explicit value, not "unset"
    assert tolerance_for("float32", None, set(), atol=3e-3) == Tolerance("fp32", 1e-4, 3e-3)


@pytest.mark.parametrize("dtype, precision", [("bfloat16", "bf16"), ("float16", "fp16")])
def test_half_dtypes_get_their_own_precision(dtype, precision):
    tol = tolerance_for(dtype, None, set())
    assert tol.precision == precision
    assert (tol.rtol, tol.atol) == TOLERANCES[precision]


# -- compare -----------------------------------------------------------------------------------

def randn(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_equal_outputs_pass():
    x = randn(64, 32)
    result = compare([x.clone()], [x], FP32)
    assert result.ok and result.message == "" and result.mismatch is None
    assert result.max_abs_error == 0 and result.max_rel_error == 0


def test_another_summation_order_passes_at_fp32():
    a, b = randn(128, 256, seed=1), randn(256, 64, seed=2)
    honest = (a.double() @ b.double()).float()
    result = compare([a @ b], [honest], FP32)
    assert result.ok, result.message
    assert 0 < result.max_rel_error < 1e-4


def test_fp16_rounded_fp32_fails_but_passes_under_tf32():
    x = randn(4096, seed=3)
    rounded = x.half().float()
    result = compare([rounded], [x], FP32)
    assert not result.ok
    assert "outside tolerance" in result.message
    assert compare([rounded], [x], TF32).ok  # the next precision down admits it


def test_nan_where_the_reference_is_finite_fails():
    expected = randn(10, seed=4)
    got = expected.clone()
    got[7] = float("nan")
    result = compare([got], [expected], TF32)
    assert not result.ok
    assert result.mismatch["index"] == [7]
    assert math.isnan(result.mismatch["got"])


def test_nan_where_the_reference_is_nan_passes():
    expected = randn(10, seed=5)
    expected[2] = float("nan")
    result = compare([expected.clone()], [expected], FP32)
    assert result.ok, result.message
    assert math.isfinite(result.max_abs_error)


def test_inf_of_the_wrong_sign_fails():
    expected = randn(10, seed=6)
    expected[3] = float("inf")
    got = expected.clone()
    got[3] = float("-inf")
    result = compare([got], [expected], TF32)
    assert not result.ok
    assert "non-finite value differs" in result.message
    assert result.mismatch["index"] == [3]
    assert compare([expected.clone()], [expected], FP32).ok  # the same inf passes


def test_inf_where_the_reference_is_finite_fails():
    expected = randn(10, seed=7)
    got = expected.clone()
    got[0] = float("inf")
    assert not compare([got], [expected], TF32).ok


def test_shape_dtype_and_count_mismatches_are_described():
    x = randn(4, 5)
    assert compare([x[:3]], [x], FP32).message == "output 0 has shape [3, 5], expected [4, 5]"
    assert compare([x.half()], [x], FP32).message == "output 0 has dtype torch.float16, expected torch.float32"
    assert compare([x, x], [x], FP32).message == "returned 2 output(s), the reference returns 1"
    assert compare([x, x.T], [x, x], FP32).message == "output 1 has shape [5, 4], expected [4, 5]"


def test_integer_and_boolean_outputs_must_match_exactly():
    labels = torch.arange(1000, dtype=torch.int64)
    off_by_one = labels.clone()
    off_by_one[500] += 1  # far within any float tolerance, but not equal
    result = compare([off_by_one], [labels], Tolerance("bf16", 1.0, 1.0))
    assert not result.ok
    assert "exact match required" in result.message
    assert result.mismatch["index"] == [500]
    assert result.mismatch["expected"] == 500 and result.mismatch["got"] == 501
    assert compare([labels.clone()], [labels], FP32).ok

    mask = labels % 2 == 0
    assert compare([mask.clone()], [mask], FP32).ok
    assert not compare([~mask], [mask], FP32).ok


def test_the_mismatch_names_output_worst_index_expected_and_got():
    first, second = randn(8, 8, seed=8), randn(4, 6, seed=9)
    wrong = second.clone()
    wrong[1, 4] += 0.5
    wrong[2, 2] += 2.0  # the worst element
    result = compare([first.clone(), wrong], [first, second], FP32)
    assert not result.ok
    detail = result.mismatch
    assert detail["output"] == 1
    assert detail["index"] == [2, 2]
    assert detail["expected"] == pytest.approx(float(second[2, 2]))
    assert detail["got"] == pytest.approx(float(wrong[2, 2]))
    assert detail["error"] == pytest.approx(2.0, rel=1e-5)
    assert detail["mismatched_elements"] == 2 and detail["elements"] == 24
    assert 0 < detail["allowed"] < 2.0
    assert result.message.startswith("output 1 at index [2, 2]: got ")
    assert "2 of 24 elements wrong" in result.message


def test_atol_scales_with_the_outputs_size():
    # An element that cancels to zero is judged against the output's size, not against zero.
    expected = torch.tensor([1000.0, -1000.0, 0.0])
    assert compare([torch.tensor([1000.0, -1000.0, 0.01])], [expected], FP32).ok
    # The same absolute error on an output of size 1e-3 is far out.
    small = expected * 1e-6
    assert not compare([small + torch.tensor([0.0, 0.0, 0.01])], [small], FP32).ok


def test_empty_outputs_compare_equal():
    empty = torch.empty(0, 3)
    assert compare([empty.clone()], [empty], FP32).ok


# -- timing ------------------------------------------------------------------------------------

def test_time_calls_on_cpu_reports_sane_statistics():
    sets = [[randn(256, seed=k)] for k in range(3)]
    result = timing.time_calls(lambda x: x * 2, sets, "cpu", warmup_runs=2, min_runs=7, max_runs=50, budget_s=0.05)
    assert 7 <= result.runs <= 50
    assert result.median_ms > 0 and result.iqr_ms >= 0
    assert len(result.last_outputs) == 3
    for k, out in enumerate(result.last_outputs):  # one per input set, from its own inputs
        assert torch.equal(out, sets[k][0] * 2)
    assert result.summary() == {"median_ms": result.median_ms, "iqr_ms": result.iqr_ms, "runs": result.runs}


def test_time_calls_makes_exactly_min_runs_when_the_budget_is_spent():
    calls = []
    result = timing.time_calls(lambda x: calls.append(x), [[1], [2]], "cpu", warmup_runs=3, min_runs=5,
                               max_runs=100, budget_s=0.0)
    assert result.runs == 5
    assert len(calls) == 3 + 5  # warm-up calls happen but are not timed
    assert calls[:3] == [1, 2, 1] and calls[3:] == [1, 2, 1, 2, 1]  # input sets rotate


def test_time_calls_stops_at_max_runs():
    result = timing.time_calls(lambda: None, [[]], "cpu", warmup_runs=0, min_runs=2, max_runs=6, budget_s=60.0)
    assert result.runs == 6


def test_time_calls_measures_the_call():
    import time

    result = timing.time_calls(lambda: time.sleep(0.003), [[]], "cpu", warmup_runs=0, min_runs=3, max_runs=3,
                               budget_s=0.0)
    assert 3.0 <= result.median_ms < 500


def test_time_calls_needs_an_input_set():
    with pytest.raises(ValueError):
        timing.time_calls(lambda: None, [], "cpu")


# -- wire --------------------------------------------------------------------------------------

def test_cpu_tensors_roundtrip_through_the_wire_in_shared_memory():
    tensors = [randn(3, 4), (torch.arange(5), {"half": torch.ones(2, dtype=torch.float16)}), None, 3]
    loaded = wire.load_tensors(wire.dump_tensors(tensors))
    assert torch.equal(loaded[0], tensors[0])
    assert torch.equal(loaded[1][0], tensors[1][0])
    assert loaded[1][1]["half"].dtype == torch.float16 and torch.equal(loaded[1][1]["half"], tensors[1][1]["half"])
    assert loaded[2] is None and loaded[3] == 3
    tensors[0][0, 0] = 100.0  # shared, not copied
    assert loaded[0][0, 0] == 100.0


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_load_tensors_refuses_a_pickle_that_calls_os_system(tmp_path):
    marker = tmp_path / "pwned"
    blob = pickle.dumps([_System(f"touch {marker}")])
    with pytest.raises(wire.UnsafeBlob, match=r"refused to load (posix|os)\.system"):
        wire.load_tensors(blob)
    assert not marker.exists()
    pickle.loads(blob)  # the same blob, unpickled plainly, does run the command: the test would see it
    assert marker.exists()


def test_load_tensors_refuses_tensor_subclasses():
    blob = wire.dump_tensors(torch.nn.Parameter(torch.ones(3)))
    with pytest.raises(wire.UnsafeBlob):
        wire.load_tensors(blob)


def test_send_and_recv_carry_a_header_and_blobs():
    import multiprocessing as mp

    a, b = mp.Pipe()
    try:
        wire.send(a, {"cmd": "run", "args": {"n": 1}}, [b"one", b"two"])
        header, blobs = wire.recv(b)
    finally:
        a.close()
        b.close()
    assert header == {"cmd": "run", "args": {"n": 1}}
    assert blobs == [b"one", b"two"]


def test_time_calls_times_every_input_set_even_past_max_runs():
    """Each set's output is checked after timing: a max_runs below the number of sets must not leave one
    untimed (its output would be missing)."""
    result = timing.time_calls(lambda x: x, [[1], [2], [3], [4]], "cpu", warmup_runs=0, min_runs=2, max_runs=3,
                               budget_s=0.0)
    assert result.runs == 4 and result.last_outputs == [1, 2, 3, 4]
