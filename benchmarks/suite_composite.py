"""The built-in suite's figures from several benches: the first a whole-suite run, each later one replacing the
tasks it measured (the last wins). For sessions that re-bench a few tasks instead of the whole suite.

    python benchmarks/suite_composite.py --memory-bound MEMORY_BENCH_JSON WHOLE_SUITE_JSON [LATER_JSON ...]

Prints: tasks and how many verified; the answer's geomean speedup against torch.compile over every task (the
answer is the kernel, or the faster baseline where the kernel loses); the verified kernels' geomean; how many
of the memory-bound tasks (those of MEMORY_BENCH_JSON, a bench of the suite's memory-bound tasks) reach 85 %
of the speed of light, and how many of the verified tasks whose roofline bound is memory do; and which tasks
came from the later benches. Every figure is read from the files.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

TARGET = 0.85  # the fraction of the speed of light for memory-bound tasks


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def composite(runs: list[Path]) -> dict[str, dict[str, Any]]:
    """Each task's latest result across `runs`, in order, with the run it came from under "from"."""
    tasks: dict[str, dict[str, Any]] = {}
    for run in runs:
        for task in json.loads(run.read_text())["tasks"]:
            tasks[task["key"]] = task | {"from": str(run)}
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory-bound", type=Path, required=True, help="a bench of the memory-bound tasks")
    parser.add_argument("runs", type=Path, nargs="+", help="the whole-suite bench first, then later ones")
    args = parser.parse_args()
    tasks = composite(args.runs)
    memory_bound = [t["key"] for t in json.loads(args.memory_bound.read_text())["tasks"]]
    verified = [t for t in tasks.values() if t["verdict"] == "passed"]
    print(f"tasks {len(tasks)}, verified {len(verified)}")
    print(f"answer geomean vs torch.compile: {geomean([t['answer_speedup']['compile'] for t in tasks.values()]):.3f}x")
    print(f"verified kernels' geomean vs torch.compile: {geomean([t['speedup']['compile'] for t in verified]):.3f}x")
    fractions = {k: tasks[k].get("sol_fraction") or 0.0 for k in memory_bound}
    below = {k: v for k, v in fractions.items() if v < TARGET}
    print(f"memory-bound (the {len(memory_bound)}) at {TARGET:.0%} of the speed of light: "
          f"{len(memory_bound) - len(below)} of {len(memory_bound)}; below: "
          + ", ".join(f"{k} {v:.1%}" for k, v in below.items()))
    roofline = [t for t in verified if t.get("sol_bound") == "memory"]
    print(f"memory-bound by the roofline: {sum(t['sol_fraction'] >= TARGET for t in roofline)} of {len(roofline)}; "
          "below: " + ", ".join(f"{t['key']} {t['sol_fraction']:.1%}" for t in roofline if t["sol_fraction"] < TARGET))
    later = sorted((k, t["from"]) for k, t in tasks.items() if t["from"] != str(args.runs[0]))
    print("replaced: " + ", ".join(f"{k} ({Path(run).parent.name})" for k, run in later))


if __name__ == "__main__":
    main()
