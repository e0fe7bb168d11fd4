"""The built-in suite's baselines, measured by the evaluator's own protocol (reference worker, L2 flush,
median over rotating inputs): is every task sized to 0.5-20 ms in eager on the GPU?

    python benchmarks/suite_baselines.py --out results.json [--baselines eager compile] [--tasks PATTERN]

Results are written after each task, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import time
from pathlib import Path

from kernelwright import environment
from kernelwright.evaluate.evaluator import Evaluator
from kernelwright.evaluate.options import EvalOptions
from kernelwright.suites import builtin_tasks
from kernelwright.task import TaskError

SIZED_MS = (0.5, 20.0)  # the suite's target range for eager on an H100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--baselines", nargs="+", default=["eager"])
    parser.add_argument("--tasks", default="*", help="glob over task names")
    args = parser.parse_args()
    tasks = [t for t in builtin_tasks() if fnmatch.fnmatch(t.name, args.tasks)]
    results = {"environment": environment.current().to_dict(), "tasks": {}}
    with Evaluator(EvalOptions(baselines=tuple(args.baselines), spare_workers=0)) as evaluator:
        for task in tasks:
            start = time.perf_counter()
            try:
                timings, errors = evaluator.baselines(task)
                row = {name: t.to_dict() for name, t in timings.items()} | {"errors": errors}
            except TaskError as e:
                row = {"task_error": str(e)}
            row["seconds"] = round(time.perf_counter() - start, 1)
            results["tasks"][task.name] = row
            eager = row.get("eager", {}).get("median_ms")
            sized = "" if eager is None else ("ok" if SIZED_MS[0] <= eager <= SIZED_MS[1] else "OUT OF RANGE")
            print(f"{task.name:40s} eager {eager if eager is None else round(eager, 3)} ms {sized} "
                  f"{row.get('task_error', '')}", flush=True)
            args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
