"""Engine overhead: what the search itself costs per candidate, without generation or evaluation.

An instant generator and an instant evaluator stand in for the real ones, so
the time measured is the run's own: the journal, the store writes, the
strategy's choices, the event loop. Also: raw store writes per second, and
how fast a finished run replays from its journal (what a resume costs).

    python benchmarks/engine.py [--candidates 300] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from kernelwright.candidate import Candidate
from kernelwright.config import Config
from kernelwright.search import STRATEGIES, get_strategy
from kernelwright.search.run import Run
from kernelwright.store import NodeRecord, RunRecord, Store
from kernelwright.task import load_task

TASK = load_task(Path(__file__).parent.parent / "examples" / "tasks" / "swish_residual.py")
# A passed verdict is about this big in JSON (the evaluator's, with details): sized so store writes are honest.
PADDING = "x" * 2500


class InstantGenerator:
    """A new source per request, a little faster than its first parent: strategies have something to climb."""

    name = "instant"

    def propose(self, task, context):  # noqa: ANN001, ANN201
        parent = context.parents[0].verdict["time"]["median_ms"] if context.parents else 1.0
        time_ms = parent * (0.97 if context.seed % 3 else 1.05)
        return [Candidate(f"# {context.seed} {context.ordinal}\nT = {time_ms!r}\nclass ModelNew: pass\n",
                          f"c{context.ordinal}")]


class InstantEvaluations:
    key = "instant"

    async def evaluate(self, task, candidate):  # noqa: ANN001, ANN201
        time_ms = float(candidate.source.split("T = ")[1].split("\n")[0])
        return {"status": "passed", "reason": "instant", "time": {"median_ms": time_ms, "iqr_ms": 0.0, "runs": 10},
                "baselines": {"eager": {"median_ms": 1.0, "iqr_ms": 0.0, "runs": 10}},
                "speedup": {"eager": 1.0 / time_ms}, "speed_of_light": {"floor_ms": 0.01, "fraction": 0.01 / time_ms},
                "details": {"padding": PADDING}}


def engine_overhead(strategy: str, candidates: int, folder: Path) -> dict:
    store = Store(folder / f"{strategy}.db")
    config = Config(generator="instant", strategy=strategy)
    config.budget.candidates = candidates
    config.stop.target_sol = None
    record = RunRecord(id=strategy, key="k", task_id=TASK.id, task_name=TASK.name, task_path=str(TASK.path),
                       strategy=strategy, generator="instant", seed=0, config=config.to_dict())
    store.create_run(record)
    module = get_strategy(strategy)
    params = module.Params(**({"target_speedup": None} if strategy == "best-of-n" else {}))  # use the whole budget

    def one_pass() -> tuple[float, int]:
        run = Run(store.get_run(strategy), TASK, InstantGenerator(), InstantEvaluations(), store, config)
        start = time.perf_counter()
        module.search(run, params)
        seconds = time.perf_counter() - start
        run.close()
        return seconds, len(run.nodes)

    fresh_s, nodes = one_pass()
    replay_s, replayed = one_pass()  # the same run again: everything comes from the journal and the store
    store.close()
    assert replayed == nodes
    return {"strategy": strategy, "candidates": nodes, "ms_per_candidate": 1000 * fresh_s / nodes,
            "replay_ms_per_candidate": 1000 * replay_s / nodes}


def store_writes(count: int, folder: Path) -> dict:
    store = Store(folder / "writes.db")
    store.create_run(RunRecord(id="w", key="k", task_id="t", task_name="t", task_path="t", strategy="s",
                               generator="g", seed=0, config={}))
    verdict = {"status": "passed", "details": {"padding": PADDING}}
    rates = {}
    start = time.perf_counter()
    for i in range(count):
        store.put_source(f"c{i}", f"# source {i}\n" + PADDING)
    rates["sources_per_s"] = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(count):
        store.record_evaluation(f"c{i}", "t", "k", verdict, 1.0)
    rates["evaluations_per_s"] = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(count):
        store.record_node(NodeRecord("w", i, f"c{i}", i, f"c{i}", [], "g", "draft", None, {}, "k"))
    rates["nodes_per_s"] = count / (time.perf_counter() - start)
    store.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=300, help="candidates per strategy")
    parser.add_argument("--writes", type=int, default=2000, help="rows per store-write measurement")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kernelwright-engine-") as tmp:
        folder = Path(tmp)
        overhead = [engine_overhead(name, args.candidates, folder) for name in STRATEGIES]
        writes = store_writes(args.writes, folder)
    results = {"overhead": overhead, "store_writes": writes,
               "median_ms_per_candidate": statistics.median(r["ms_per_candidate"] for r in overhead)}
    for row in overhead:
        print(f"{row['strategy']:>10}: {row['ms_per_candidate']:6.2f} ms per candidate "
              f"({row['candidates']} candidates), replay {row['replay_ms_per_candidate']:.2f} ms")
    print("store writes per second: " + ", ".join(f"{k} {v:,.0f}" for k, v in writes.items()))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
