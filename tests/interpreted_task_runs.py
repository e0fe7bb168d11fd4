"""Runs rendered Triton candidates against task files' references under Triton's CPU interpreter.

As interpreted_runs.py, in a fresh process with TRITON_INTERPRET=1 set before anything imports
Triton; but each job names a task file (its Model, get_inputs and shape globals, as the suite holds
it) and carries the Analysis to render from, so that suite tasks run as they are, at small shapes.
Reads a pickled list of jobs on stdin, each {"task": path, "analysis": Analysis, "template": name,
"params": {...}, "globals": {name: value}, "dtype": str} (and "exact": True to ask for the
reference's every bit, where no sum's order can differ), and prints a JSON list: null for a job
that matched its reference, else the failure's text.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any


def task_job(task: Path | str, analysis: Any, template: str, params: dict[str, Any], shape: dict[str, int],
             dtype: str = "float32", exact: bool = False) -> dict[str, Any]:
    """One job: `template`'s candidate at `params`, rendered from `analysis`, against the task file's own
    reference with its globals set to `shape`, in `dtype` (every bit the same with `exact`)."""
    return {"task": str(task), "analysis": analysis, "template": template, "params": params, "globals": shape,
            "dtype": dtype} | ({"exact": True} if exact else {})


def run_task_jobs(jobs: list[dict[str, Any]]) -> list[str | None]:
    """The jobs' outcomes, from a fresh interpreter process (the caller's Triton state is left alone)."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, __file__], input=pickle.dumps(jobs), capture_output=True, env=env,
                          cwd=Path(__file__).parent, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the interpreter process failed:\n{done.stderr.decode()[-4000:]}")
    return json.loads(done.stdout.decode().splitlines()[-1])


def run_task_job_groups(groups: dict[str, list[dict[str, Any]]]) -> dict[str, list[str | None]]:
    """Every group's jobs in one interpreter process (its imports cost seconds), the outcomes split back by group."""
    flat = run_task_jobs([job for jobs in groups.values() for job in jobs])
    found, at = {}, 0
    for name, jobs in groups.items():
        found[name], at = flat[at:at + len(jobs)], at + len(jobs)
    return found


def run_job(job: dict[str, Any], templates: dict[str, Any]) -> None:
    """One job: the reference and the rendered candidate on the same inputs, in the job's dtype (model and
    floating inputs cast to it, as the evaluator casts a task's); integer inputs (targets) kept."""
    import importlib.util

    import torch
    from expert_cases import _module_from

    from kernelwright.evaluate.inputs import variant_globals

    spec = importlib.util.spec_from_file_location(f"kw_task_{Path(job['task']).stem}", job["task"])
    task = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(task)
    kind = getattr(torch, job["dtype"])
    with variant_globals(task, job["globals"]):
        torch.manual_seed(0)
        init = task.get_init_inputs()
        reference = task.Model(*init).to(kind)
        inputs = [x.to(kind) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                  for x in task.get_inputs()]
    source = templates[job["template"]].render(job["analysis"], job["params"])
    candidate = _module_from(source).ModelNew(*init).to(kind)
    candidate.load_state_dict(reference.state_dict())
    with torch.no_grad():
        expected, got = reference(*inputs), candidate(*inputs)
    where = f"{Path(job['task']).name} {job['params']} at {job['globals']} in {job['dtype']}"
    # A forward may return several outputs (a tuple): each is compared with the reference's.
    expected, got = ([o] if isinstance(o, torch.Tensor) else list(o) for o in (expected, got))
    assert len(got) == len(expected), (where, len(got), len(expected))
    # The evaluator's tolerances per precision (correctness.py); bf16's covers one rounding of the output.
    tolerance = 0.0 if job.get("exact") else {"float32": 1e-4, "bfloat16": 2e-2, "float16": 1e-2}[job["dtype"]]
    for mine, theirs in zip(got, expected):
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype, (where, mine.shape, theirs.shape)
        scale = float(theirs.float().square().mean().sqrt()) or 1.0
        torch.testing.assert_close(mine, theirs, rtol=tolerance, atol=tolerance * scale, equal_nan=True, msg=where)


def cpu_job_failures(jobs: list[dict[str, Any]]) -> list[str]:
    """Each of the jobs (C++ candidates: no interpreter needed) run here; what failed, one line each."""
    from kernelwright.generate.expert.templates import all_templates

    templates = {t.name: t for t in all_templates()}
    failures = []
    for job in jobs:
        try:
            run_job(job, templates)
        except Exception as e:  # noqa: BLE001  (every job runs; the test lists all that failed)
            failures.append(f"{job['task']} {job['params']} {job['globals']}: {e}")
    return failures


def _main() -> None:
    assert os.environ.get("TRITON_INTERPRET") == "1"
    from kernelwright.generate.expert.templates import all_templates

    templates = {t.name: t for t in all_templates()}
    outcomes: list[str | None] = []
    for job in pickle.loads(sys.stdin.buffer.read()):
        try:
            run_job(job, templates)
            outcomes.append(None)
        except Exception:
            outcomes.append(f"{ {k: v for k, v in job.items() if k != 'analysis'} }\n{traceback.format_exc(limit=3)}")
    print(json.dumps(outcomes))


if __name__ == "__main__":
    _main()
