"""A bench result as Markdown, for docs/benchmarks.md: one row per task, then the suite's metrics.

    python benchmarks/bench_table.py BENCH_JSON

Columns: the verdict and best kernel; milliseconds of the kernel, eager and torch.compile; the kernel's
speedups; its fraction of the speed-of-light time; the answer (what the run hands back: the kernel, or the
faster baseline where the kernel loses) and its speedup against torch.compile; the task's wall seconds.
Every number is read from the file; a blank cell is one the bench did not measure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kernelwright.bench.results import TaskResult, load_results
from kernelwright.report.run import format_percent


def _num(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    return "" if value is None else f"{value * scale:.{digits}f}"


def task_row(t: TaskResult) -> str:
    passed = t.verdict == "passed"
    kernel = (t.best or "").split("-")[0] if passed else "—"
    cells = [t.key, t.verdict, kernel, _num(t.time_ms if passed else None, 3),
             _num(t.baselines_ms.get("eager"), 3), _num(t.baselines_ms.get("compile"), 3),
             _num(t.speedup.get("compile")), _num(t.speedup.get("eager")), _num(t.sol_fraction, 0, 100),
             t.answer or "", _num(t.answer_speedup.get("compile")), _num(t.wall_s, 0)]
    return "| " + " | ".join(cells) + " |"


def metric_lines(m: dict[str, Any]) -> list[str]:
    fast = m["fast_p"]
    return [
        f"- tasks: {m['tasks']} ({m['scored_tasks']} scored); candidates evaluated: {m['candidates']}",
        f"- correctness rate (tasks with a verified kernel): {m['correctness_rate']:.1%}; candidate pass rate "
        f"{m['candidate_pass_rate']:.1%}; compile rate {m['compile_rate']:.1%}; shape-variant pass rate "
        f"{m['variant_pass_rate']:.1%}",
        "- fast_p against eager (p = 0, 1, 1.5, 2): " + ", ".join(f"{v:.1%}" for v in fast["eager"].values()),
        "- fast_p against torch.compile: " + ", ".join(f"{v:.1%}" for v in fast["compile"].values()),
        f"- geomean speedup of the verified kernels: {m['geomean_speedup']['eager']:.2f}x eager, "
        f"{m['geomean_speedup']['compile']:.2f}x torch.compile",
        f"- geomean speedup of the answer over all tasks: {m['geomean_answer_speedup']['eager']:.2f}x eager, "
        f"{m['geomean_answer_speedup']['compile']:.2f}x torch.compile",
        f"- mean fraction of speed of light (verified kernels): {m['mean_sol_fraction']:.1%}",
        f"- memory-bound verified tasks: {m['memory_bound']['tasks']}, at {m['memory_bound']['sol_target']:.0%} of "
        f"speed of light or more: {format_percent(m['memory_bound']['at_sol_target'])}",
        f"- torch.compile over eager: fast_1 {m['compile_over_eager']['fast_1']:.1%}, geomean "
        f"{m['compile_over_eager']['geomean']:.2f}x",
        f"- cost: {m['cost']['tokens']} tokens, ${m['cost']['cost_usd']:.2f}; task wall time summed "
        f"{m['cost']['wall_s']:.0f} s (generation {m['cost']['generate_s']:.0f} s, evaluation "
        f"{m['cost']['device_s']:.0f} s)",
    ]


def main() -> None:
    bench = load_results(Path(sys.argv[1]))
    print("| task | verdict | best kernel | kernel ms | eager ms | compile ms | kernel / compile | kernel / eager "
          "| % of SOL | answer | answer / compile | wall s |")
    print("| " + " | ".join(["---"] * 12) + " |")
    for task in sorted(bench.tasks, key=lambda t: t.key):
        print(task_row(task))
    print()
    print("\n".join(metric_lines(bench.metrics)))


if __name__ == "__main__":
    main()
