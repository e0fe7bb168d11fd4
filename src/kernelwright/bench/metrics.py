"""The suite metrics of a bench: the field's numbers (KernelBench's fast_p, Codex's pass@k) and ours.

Each function is plain arithmetic on per-task numbers, so docs/bench.md can
state its formula and tests can check it by hand. A task is *correct* when at
least one of its candidates passed; its speedups and fraction of speed of
light are those of its fastest passed candidate, from the same measurement
session as that candidate's baselines.

`suite_metrics` reads any per-task record with the attributes of `TaskNumbers`
(bench/results.py's TaskResult is the real one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

# p of fast_p: 0 is "correct at all" (KernelBench's fast_0), 1 "faster than the baseline".
FAST_P = (0.0, 1.0, 1.5, 2.0)
PASS_AT_K = (1, 5, 10)
PASSED = "passed"
# Statuses of candidates that never reached the compiler: they say nothing about compiling.
NOT_COMPILED = frozenset({"static_rejected"})
COMPILE_FAILED = frozenset({"compile_error"})
# A memory-bound kernel at this fraction of its speed of light has little left to gain: the share of
# memory-bound tasks at or above it is reported.
MEMORY_SOL_TARGET = 0.85


class TaskNumbers(Protocol):
    """What the metrics need of one task of a bench."""

    counts: Mapping[str, int]  # evaluated candidates per verdict status
    speedup: Mapping[str, float]  # fastest passed candidate's speedup per baseline; {} when none passed
    answer_speedup: Mapping[str, float]  # the run's answer over each baseline (>= 1 by construction)
    baselines_ms: Mapping[str, float]  # eager, compile medians
    sol_fraction: float | None  # fastest passed candidate's fraction of speed of light
    sol_bound: str | None  # "memory" or "compute": the larger term of that candidate's floor
    variant_passed: int  # candidates that passed every shape variant
    variant_reached: int  # candidates correct on the task's own shapes (so tried on its variants)
    tokens: int
    cost_usd: float
    wall_s: float
    generate_s: float
    device_s: float
    error: str | None  # the task itself is broken (its reference cannot run): not scored


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k).

    The chance that k samples drawn without replacement from the n hold at
    least one that passed. Needs 0 <= c <= n and 1 <= k <= n.
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    # C(n-c, k) is 0 when fewer than k samples failed: some passing one is always drawn.
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def suite_pass_at_k(samples: Sequence[tuple[int, int]], k: int) -> float | None:
    """Mean pass@k over tasks, each given as (n, c). A task with no candidate counts 0 (nothing
    passed); None when some task has 0 < n < k, where the estimator is undefined."""
    if not samples:
        return None
    values = []
    for n, c in samples:
        if n == 0:
            values.append(0.0)
        elif n < k:
            return None
        else:
            values.append(pass_at_k(n, c, k))
    return sum(values) / len(values)


def fast_p(speedups: Sequence[float | None], p: float) -> float | None:
    """Share of tasks that are correct and more than p times faster than the baseline.

    One entry per task: the task's speedup, or None when it is not correct (or
    the baseline was not timed, which counts as not fast). None for no tasks.
    """
    if not speedups:
        return None
    return sum(1 for s in speedups if s is not None and s > p) / len(speedups)


def geomean(values: Iterable[float]) -> float | None:
    """Geometric mean of positive values; None for none."""
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(logs) / len(logs)) if logs else None


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def compile_rate(counts: Mapping[str, int]) -> float | None:
    """Of the candidates that reached the compiler (all but static rejections), the share that built."""
    reached = sum(n for status, n in counts.items() if status not in NOT_COMPILED)
    failed = sum(n for status, n in counts.items() if status in COMPILE_FAILED)
    return ratio(reached - failed, reached)


def suite_metrics(tasks: Sequence[TaskNumbers], baselines: Sequence[str]) -> dict[str, Any]:
    """Every suite metric over the scored tasks (those whose reference runs), per baseline where it applies."""
    scored = [t for t in tasks if t.error is None]
    counts: dict[str, int] = {}
    for task in scored:
        for status, n in task.counts.items():
            counts[status] = counts.get(status, 0) + n
    samples = [(sum(t.counts.values()), t.counts.get(PASSED, 0)) for t in scored]
    correct = [t for t in scored if t.counts.get(PASSED, 0) > 0]
    eager_vs_compile = [t.baselines_ms["eager"] / t.baselines_ms["compile"] for t in scored
                        if t.baselines_ms.get("eager") and t.baselines_ms.get("compile")]
    memory = [t.sol_fraction for t in correct if t.sol_bound == "memory" and t.sol_fraction is not None]
    return {
        "tasks": len(tasks),
        "scored_tasks": len(scored),
        "task_errors": len(tasks) - len(scored),
        "candidates": sum(n for n, _ in samples),
        "correctness_rate": ratio(len(correct), len(scored)),
        "candidate_pass_rate": ratio(counts.get(PASSED, 0), sum(counts.values())),
        "compile_rate": compile_rate(counts),
        "fast_p": {b: {f"{p:g}": fast_p([t.speedup.get(b) for t in scored], p) for p in FAST_P} for b in baselines},
        "pass_at_k": {str(k): suite_pass_at_k(samples, k) for k in PASS_AT_K},
        "geomean_speedup": {b: geomean(t.speedup[b] for t in correct if b in t.speedup) for b in baselines},
        "geomean_answer_speedup": {b: geomean(t.answer_speedup[b] for t in scored if b in t.answer_speedup)
                                   for b in baselines},
        "mean_sol_fraction": mean(t.sol_fraction for t in correct if t.sol_fraction is not None),
        # Verified tasks whose fastest kernel is memory-bound: how close those come to the memory floor.
        "memory_bound": {"tasks": len(memory), "mean_sol_fraction": mean(memory), "sol_target": MEMORY_SOL_TARGET,
                         "at_sol_target": ratio(sum(f >= MEMORY_SOL_TARGET for f in memory), len(memory))},
        "variant_pass_rate": ratio(sum(t.variant_passed for t in scored), sum(t.variant_reached for t in scored)),
        # torch.compile's own fast_1 against eager: how much room the suite leaves a compiler.
        "compile_over_eager": {"fast_1": fast_p(eager_vs_compile, 1.0), "geomean": geomean(eager_vs_compile)},
        "statuses": dict(sorted(counts.items())),
        # What was spent counts whether or not the task could be scored.
        "cost": {
            "tokens": sum(t.tokens for t in tasks),
            "cost_usd": sum(t.cost_usd for t in tasks),
            "wall_s": sum(t.wall_s for t in tasks),
            "generate_s": sum(t.generate_s for t in tasks),
            "device_s": sum(t.device_s for t in tasks),
        },
    }
