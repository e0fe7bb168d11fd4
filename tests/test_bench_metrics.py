"""Suite metrics against cases computed by hand (the arithmetic is in each test's comments)."""

from __future__ import annotations

import math

import pytest

from kernelwright.bench import metrics
from kernelwright.bench.results import TaskResult


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 0.4),  # 1 - C(3,1)/C(5,1) = 1 - 3/5
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (5, 2, 4, 1.0),  # only 3 failed: any 4 drawn hold a pass (C(3,4) = 0)
    (10, 0, 5, 0.0),
    (10, 10, 1, 1.0),
    (20, 3, 10, 1 - 19448 / 184756),  # 1 - C(17,10)/C(20,10)
])
def test_pass_at_k_is_the_unbiased_estimator(n: int, c: int, k: int, expected: float) -> None:
    assert metrics.pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (3, 4, 1), (3, 1, 0), (0, 0, 1)])
def test_pass_at_k_refuses_what_it_cannot_estimate(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        metrics.pass_at_k(n, c, k)


def test_suite_pass_at_k_averages_tasks_and_is_undefined_below_k() -> None:
    samples = [(5, 2), (4, 0), (0, 0)]  # a task with no candidate counts as nothing passed
    assert metrics.suite_pass_at_k(samples, 1) == pytest.approx((0.4 + 0.0 + 0.0) / 3)
    assert metrics.suite_pass_at_k(samples, 4) == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert metrics.suite_pass_at_k(samples, 5) is None  # 4 samples cannot estimate pass@5
    assert metrics.suite_pass_at_k([], 1) is None


def test_fast_p_counts_correct_tasks_strictly_faster_than_p() -> None:
    speedups = [None, 0.5, 1.0, 1.2, 1.6, 2.5]  # None: the task is not correct
    assert metrics.fast_p(speedups, 0.0) == pytest.approx(5 / 6)
    assert metrics.fast_p(speedups, 1.0) == pytest.approx(3 / 6)  # 1.0 is not faster than the baseline
    assert metrics.fast_p(speedups, 1.5) == pytest.approx(2 / 6)
    assert metrics.fast_p(speedups, 2.0) == pytest.approx(1 / 6)
    assert metrics.fast_p([], 1.0) is None


def test_geomean_compile_rate_and_ratio() -> None:
    assert metrics.geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert metrics.geomean([0.5, 2.0, 8.0]) == pytest.approx(2.0)  # (0.5 * 2 * 8) ** (1/3)
    assert metrics.geomean([]) is None
    # 2 static rejections never reached the compiler; of the other 8, one did not build.
    assert metrics.compile_rate({"static_rejected": 2, "compile_error": 1, "passed": 3, "incorrect": 4}) == 7 / 8
    assert metrics.compile_rate({"static_rejected": 2}) is None
    assert metrics.ratio(1, 0) is None


def task(key: str, counts: dict[str, int], speedup: dict[str, float] | None = None, **fields) -> TaskResult:
    return TaskResult(key=key, task_id=f"id-{key}", task_path=f"/suite/{key}.py", counts=counts,
                      speedup=speedup or {}, **fields)


def test_suite_metrics_by_hand() -> None:
    tasks = [
        # passed: 2.0x eager, 1.2x compile; 1 of its 2 candidates that reached the variants passed them
        task("a", {"passed": 1, "incorrect": 2, "compile_error": 1}, {"eager": 2.0, "compile": 1.2},
             sol_fraction=0.5, baselines_ms={"eager": 2.0, "compile": 1.0},
             answer_speedup={"eager": 2.0, "compile": 1.2}, variant_passed=1, variant_reached=2,
             tokens=100, cost_usd=0.25, wall_s=10.0, generate_s=4.0, device_s=5.0),
        # passed: 0.5x eager (slower), compile not timed
        task("b", {"passed": 2, "static_rejected": 2}, {"eager": 0.5}, sol_fraction=0.1,
             baselines_ms={"eager": 1.0}, answer_speedup={"eager": 1.0}, variant_passed=2, variant_reached=2,
             tokens=50, cost_usd=0.5, wall_s=20.0, generate_s=6.0, device_s=7.0),
        # nothing passed; the answer is eager, torch.compile was 4x slower than eager
        task("c", {"runtime_error": 4}, baselines_ms={"eager": 1.0, "compile": 4.0},
             answer_speedup={"eager": 1.0, "compile": 4.0}, wall_s=5.0),
        # the reference itself failed: not scored, but its cost counts
        task("d", {}, error="d.py: Model.forward raised RuntimeError", cost_usd=1.0, wall_s=1.0),
    ]
    m = metrics.suite_metrics(tasks, ["eager", "compile"])
    assert (m["tasks"], m["scored_tasks"], m["task_errors"], m["candidates"]) == (4, 3, 1, 12)
    assert m["correctness_rate"] == pytest.approx(2 / 3)
    assert m["candidate_pass_rate"] == pytest.approx(3 / 12)
    assert m["compile_rate"] == pytest.approx(9 / 10)  # 2 static rejections out; 1 compile error of 10
    assert m["fast_p"]["eager"] == pytest.approx({"0": 2 / 3, "1": 1 / 3, "1.5": 1 / 3, "2": 0.0})
    assert m["fast_p"]["compile"] == pytest.approx({"0": 1 / 3, "1": 1 / 3, "1.5": 0.0, "2": 0.0})
    assert m["pass_at_k"]["1"] == pytest.approx((1 / 4 + 2 / 4 + 0) / 3)
    assert m["pass_at_k"]["5"] is None  # every task has 4 candidates
    assert m["geomean_speedup"]["eager"] == pytest.approx(1.0)  # sqrt(2.0 * 0.5)
    assert m["geomean_speedup"]["compile"] == pytest.approx(1.2)
    assert m["geomean_answer_speedup"]["eager"] == pytest.approx(2 ** (1 / 3))  # (2 * 1 * 1) ** (1/3)
    assert m["geomean_answer_speedup"]["compile"] == pytest.approx(math.sqrt(1.2 * 4.0))
    assert m["mean_sol_fraction"] == pytest.approx(0.3)
    assert m["variant_pass_rate"] == pytest.approx(3 / 4)
    # compile over eager: a is 2x, c is 0.25x; b has no compile time
    assert m["compile_over_eager"]["fast_1"] == pytest.approx(1 / 2)
    assert m["compile_over_eager"]["geomean"] == pytest.approx(math.sqrt(2 * 0.25))
    assert m["statuses"] == {"compile_error": 1, "incorrect": 2, "passed": 3, "runtime_error": 4, "static_rejected": 2}
    assert m["cost"] == pytest.approx({"tokens": 150, "cost_usd": 1.75, "wall_s": 36.0, "generate_s": 10.0,
                                       "device_s": 12.0})


def test_memory_bound_tasks_are_counted_against_their_floor() -> None:
    tasks = [
        task("at", {"passed": 1}, {"eager": 1.0}, sol_fraction=0.85, sol_bound="memory"),  # at the target counts
        task("below", {"passed": 1}, {"eager": 1.0}, sol_fraction=0.6, sol_bound="memory"),
        task("compute", {"passed": 1}, {"eager": 1.0}, sol_fraction=0.95, sol_bound="compute"),
        task("none_passed", {"incorrect": 2}),  # no kernel: no floor to compare with
    ]
    m = metrics.suite_metrics(tasks, ["eager"])["memory_bound"]
    assert m["tasks"] == 2 and m["sol_target"] == metrics.MEMORY_SOL_TARGET == 0.85
    assert m["mean_sol_fraction"] == pytest.approx(0.725) and m["at_sol_target"] == pytest.approx(0.5)


def test_suite_metrics_of_nothing_are_none_not_errors() -> None:
    m = metrics.suite_metrics([], ["eager"])
    assert m["correctness_rate"] is None and m["fast_p"]["eager"]["1"] is None and m["pass_at_k"]["1"] is None
    assert m["geomean_speedup"]["eager"] is None and m["mean_sol_fraction"] is None
    assert m["memory_bound"]["tasks"] == 0 and m["memory_bound"]["at_sol_target"] is None
