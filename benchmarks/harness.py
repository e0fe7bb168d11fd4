"""How fast and how trustworthy is the evaluator? One run answers the evaluator issue's questions.

    python benchmarks/harness.py --out DIR [--runs 3]

1. NVRTC compile time of a small kernel (disk cache bypassed), median of 5.
2. Seconds per full evaluation, by backend (Triton, CUDA-NVRTC, CUDA-load_inline,
   CPU C++), `--runs` times each with the task's baselines cached: the first
   evaluation of a task pays for the reference worker and the baselines.
3. The eager baseline of the same task measured in two separate evaluators
   (fresh caches): the two medians must agree within 3%.
4. Every adversarial and failing fixture candidate, with its verdict.

Writes harness.json and harness.md into DIR and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"

BACKEND_CANDIDATES = {
    "triton": (EXAMPLES / "tasks/swish_residual.py", EXAMPLES / "candidates/triton_swish_residual.py"),
    "cuda (NVRTC)": (EXAMPLES / "tasks/swish_residual.py", EXAMPLES / "candidates/nvrtc_swish_residual.py"),
    "cuda (load_inline)": (EXAMPLES / "tasks/swish_residual.py", EXAMPLES / "candidates/load_inline_swish_residual.py"),
    "cpu (C++)": (FIXTURES / "tasks/gelu.py", FIXTURES / "candidates/cpu_gelu.py"),
}
GELU_TASK = FIXTURES / "tasks/gelu.py"
CORRECT = {"cpu_gelu.py", "triton_gelu.py", "cpu_scale_bias.py", "triton_softmax.py"}


def nvrtc_compile_seconds(samples: int = 5) -> list[float]:
    from kernelwright.backends import cuda

    source = (EXAMPLES / "candidates/nvrtc_swish_residual.py").read_text().split('r"""')[1].split('"""')[0]
    times = []
    for i in range(samples):
        unique = f"{source}\n// harness sample {i} {time.time_ns()}\n"  # defeats the disk cache
        start = time.perf_counter()
        cuda.compile(unique)
        times.append(time.perf_counter() - start)
    return times


def evaluation_seconds(runs: int, spares: int, backends: list[str]) -> dict[str, dict]:
    from kernelwright.candidate import load_candidate
    from kernelwright.evaluate.evaluator import Evaluator
    from kernelwright.evaluate.options import EvalOptions
    from kernelwright.task import load_task

    results = {}
    with Evaluator(EvalOptions(spare_workers=spares)) as evaluator:
        for backend, (task_path, cand_path) in BACKEND_CANDIDATES.items():
            if backend not in backends:
                continue
            task, candidate = load_task(task_path), load_candidate(cand_path)
            rows = []
            for run in range(runs + 1):  # run 0 warms the reference worker and the baseline cache
                start = time.perf_counter()
                verdict = evaluator.evaluate(task, candidate)
                rows.append({"seconds": time.perf_counter() - start, "steps": verdict.seconds,
                             "verdict": verdict.to_dict()})
                print(f"  {backend} run {run}: {verdict.status.value} in {rows[-1]['seconds']:.2f} s "
                      f"- {verdict.reason}", flush=True)
            warm = [r["seconds"] for r in rows[1:]]
            results[backend] = {"first_s": rows[0]["seconds"], "median_s": statistics.median(warm),
                                "runs": rows}
    return results


def eager_repeatability() -> list[float]:
    """The eager baseline of the swish task from two evaluators with separate, empty caches."""
    from kernelwright.candidate import load_candidate
    from kernelwright.evaluate.evaluator import Evaluator
    from kernelwright.evaluate.options import EvalOptions
    from kernelwright.task import load_task

    task_path, cand_path = BACKEND_CANDIDATES["triton"]
    medians = []
    saved = os.environ.get("KERNELWRIGHT_CACHE_DIR")
    for _ in range(2):
        os.environ["KERNELWRIGHT_CACHE_DIR"] = tempfile.mkdtemp(prefix="kw-repeat-")
        with Evaluator(EvalOptions(baselines=("eager",))) as evaluator:
            verdict = evaluator.evaluate(load_task(task_path), load_candidate(cand_path))
        medians.append(verdict.baselines["eager"].median_ms)
    if saved is None:
        os.environ.pop("KERNELWRIGHT_CACHE_DIR")
    else:
        os.environ["KERNELWRIGHT_CACHE_DIR"] = saved
    return medians


def adversarial() -> list[dict]:
    from kernelwright.candidate import load_candidate
    from kernelwright.evaluate.evaluator import Evaluator
    from kernelwright.evaluate.options import EvalOptions
    from kernelwright.task import load_task

    rows = []
    # Short limits: the hanging fixture should cost a minute, not the default five.
    options = EvalOptions(baselines=("eager",), step_timeout=20, compile_timeout=20)
    with Evaluator(options) as evaluator:
        for path in sorted((FIXTURES / "candidates").glob("*.py")):
            if path.name in CORRECT or path.name == "only_pytorch_allowed.py":
                continue
            verdict = evaluator.evaluate(load_task(GELU_TASK), load_candidate(path))
            rows.append({"candidate": path.name, "status": verdict.status.value, "reason": verdict.reason,
                         "device": verdict.environment.get("device")})
            print(f"  {path.name}: {verdict.status.value} - {verdict.reason[:150]}", flush=True)
    with Evaluator(EvalOptions(baselines=("eager",), allow_ops=("gelu",))) as evaluator:
        verdict = evaluator.evaluate(load_task(GELU_TASK), load_candidate(FIXTURES / "candidates/only_pytorch_allowed.py"))
        rows.append({"candidate": "only_pytorch_allowed.py (allow_ops=gelu)", "status": verdict.status.value,
                     "reason": verdict.reason, "device": verdict.environment.get("device")})
    return rows


def markdown(report: dict) -> str:
    lines = []
    if "nvrtc_s" in report:
        t = report["nvrtc_s"]
        lines += ["## NVRTC compile (small kernel, cache bypassed)", "",
                  f"median {statistics.median(t):.3f} s over {len(t)} (min {min(t):.3f}, max {max(t):.3f})", ""]
    if "evaluations" in report:
        lines += ["## Seconds per evaluation, by backend", "",
                  "| backend | first (cold reference + baselines) s | median of warm runs s | verdict "
                  "| speedup vs eager | vs compile | SoL fraction |", "|---|---|---|---|---|---|---|"]
        for backend, r in report["evaluations"].items():
            v = r["runs"][-1]["verdict"]
            sol = f"{v['speed_of_light']['fraction']:.2f}" if v["speed_of_light"] else "-"
            speedup = {name: f"{x:.2f}x" for name, x in v["speedup"].items()}
            lines.append(f"| {backend} | {r['first_s']:.1f} | {r['median_s']:.2f} | {v['status']} | "
                         f"{speedup.get('eager', '-')} | {speedup.get('compile', '-')} | {sol} |")
        lines.append("")
    if "eager_repeat_ms" in report:
        a, b = report["eager_repeat_ms"]
        lines += ["## Eager baseline, two separate evaluators", "",
                  f"{a:.4f} ms and {b:.4f} ms: differ by {100 * abs(a - b) / min(a, b):.2f}%", ""]
    if "adversarial" in report:
        lines += ["## Adversarial and failing candidates (task: tests/fixtures/tasks/gelu.py)", "",
                  "| candidate | device | status | reason |", "|---|---|---|---|"]
        for row in report["adversarial"]:
            reason = row["reason"].replace("|", "\\|").replace("\n", " ")[:180]
            lines.append(f"| {row['candidate']} | {row['device'] or '-'} | {row['status']} | {reason} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spares", type=int, default=1, help="candidate workers kept warm (EvalOptions.spare_workers)")
    parser.add_argument("--backends", nargs="*", default=list(BACKEND_CANDIDATES), help="backends to evaluate")
    parser.add_argument("--sections", nargs="*", default=["nvrtc_s", "evaluations", "eager_repeat_ms", "adversarial"],
                        help="which measurements to take (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from kernelwright import environment

    report = {"environment": environment.current().to_dict(), "command": " ".join(sys.argv),
              "spare_workers": args.spares}
    sections = [("nvrtc_s", nvrtc_compile_seconds), ("evaluations", lambda: evaluation_seconds(args.runs, args.spares, args.backends)),
                ("eager_repeat_ms", eager_repeatability), ("adversarial", adversarial)]
    for key, measure in [(key, measure) for key, measure in sections if key in args.sections]:
        print(f"{key} ...", flush=True)
        report[key] = measure()
        # Written after every section, so a run cut short still leaves what it measured.
        (args.out / "harness.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (args.out / "harness.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
