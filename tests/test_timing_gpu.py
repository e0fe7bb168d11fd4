"""The GPU timing protocol: CUDA events around queued calls (see evaluate/timing.py)."""

import time

import pytest
import torch

from kernelwright.evaluate import timing

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_every_set_is_timed_and_its_output_is_complete_on_return():
    sets = [[torch.full((1 << 22,), float(k), device="cuda")] for k in range(3)]
    result = timing.time_calls(lambda x: x * 2 + 1, sets, "cuda", warmup_runs=1, min_runs=25, max_runs=25,
                               budget_s=0.0)
    assert result.runs == 25  # more than one round of ROUND calls
    assert result.median_ms > 0 and result.iqr_ms >= 0
    for k, out in enumerate(result.last_outputs):
        assert torch.equal(out, sets[k][0] * 2 + 1)


def test_a_host_side_slower_than_the_kernel_is_counted():
    """The GPU idles while the host sleeps between the call's events: that wait is the call's time."""
    x = torch.ones(1024, device="cuda")

    def slow_host(x):
        time.sleep(0.004)
        return x * 2

    result = timing.time_calls(slow_host, [[x]], "cuda", warmup_runs=1, min_runs=5, max_runs=5, budget_s=0.0)
    assert result.median_ms >= 3.5


def test_device_work_is_counted_not_just_the_launch():
    """A call that queues a long kernel and returns at once is timed by the kernel, not by its launch."""
    a = torch.randn(4096, 4096, device="cuda")
    launch_ms = []

    def matmuls(a):
        t0 = time.perf_counter()
        out = a
        for _ in range(8):
            out = out @ a
        launch_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    result = timing.time_calls(matmuls, [[a]], "cuda", warmup_runs=1, min_runs=10, max_runs=10, budget_s=0.0)
    # Eight fp32 4096^3 products are over 1.1 TFLOP: more than a millisecond on any GPU made so far, and far
    # more than queueing them takes on the host.
    assert result.median_ms > 1.0
    assert result.median_ms > 2 * sorted(launch_ms)[len(launch_ms) // 2]
