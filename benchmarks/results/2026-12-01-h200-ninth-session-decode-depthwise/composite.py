"""The suite's figures as a composite: the fifth session's whole-suite run (2 x H200), each task replaced by
its result in a later session's bench where there is one (the latest wins). Run from the repository root:

    python benchmarks/results/2026-12-01-h200-ninth-session-decode-depthwise/composite.py
"""
import json
import math
from pathlib import Path

RESULTS = Path("benchmarks/results")
RUNS = ["2026-11-30-h200x2-expert-suite-protocol2/bench.json",  # fifth session: all 46 tasks
        "2026-11-30-h200-sixth-session-cooperative-norms/bench-cooperative-first.json",
        "2026-12-01-h200-seventh-session-cooperative-softmax/bench.json",
        "2026-12-01-h200-seventh-session-cooperative-softmax/bench-kl.json",
        "2026-12-01-h200-eighth-session-slots/bench.json",
        "2026-12-01-h200-eighth-session-slots/bench-kl.json",
        "2026-12-01-h200-eighth-session-slots/bench-final.json",
        "2026-12-01-h200-ninth-session-decode-depthwise/bench-decode.json",
        "2026-12-01-h200-ninth-session-decode-depthwise/bench-depthwise2.json"]
# The 26 tasks of the fourth session's memory-bound bench, the "memory-bound tasks".
MEMORY_BOUND = [t["key"] for t in json.loads((RESULTS / "2026-11-30-h200x2-expert-memory-bound/bench.json").read_text())["tasks"]]
TARGET = 0.85


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> None:
    tasks: dict[str, dict] = {}
    for run in RUNS:
        for task in json.loads((RESULTS / run).read_text())["tasks"]:
            tasks[task["key"]] = task | {"from": run.split("/")[0]}
    verified = [t for t in tasks.values() if t["verdict"] == "passed"]
    print(f"tasks {len(tasks)}, verified {len(verified)}")
    print(f"answer geomean vs torch.compile: {geomean([t['answer_speedup']['compile'] for t in tasks.values()]):.3f}x")
    print(f"verified kernels' geomean vs torch.compile: {geomean([t['speedup']['compile'] for t in verified]):.3f}x")
    below = {k: tasks[k].get("sol_fraction") for k in MEMORY_BOUND if (tasks[k].get("sol_fraction") or 0) < TARGET}
    print(f"memory-bound (the 26) at {TARGET:.0%} of the speed of light: {len(MEMORY_BOUND) - len(below)} of "
          f"{len(MEMORY_BOUND)}; below: " + ", ".join(f"{k} {v:.1%}" for k, v in below.items()))
    roofline = [t for t in verified if t.get("sol_bound") == "memory"]
    at = [t for t in roofline if t["sol_fraction"] >= TARGET]
    print(f"memory-bound by the roofline: {len(at)} of {len(roofline)}; below: "
          + ", ".join(f"{t['key']} {t['sol_fraction']:.1%}" for t in roofline if t["sol_fraction"] < TARGET))
    print("replaced: " + ", ".join(f"{k} ({t['from']})" for k, t in sorted(tasks.items())
                                  if not t["from"].endswith("protocol2")))


if __name__ == "__main__":
    main()
