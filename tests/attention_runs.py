"""Runs rendered attention candidates against a reference under Triton's CPU interpreter, or compiles their
kernels for an H100 (sm_90; no GPU needed).

As interpreted_runs.py, a fresh process: with TRITON_INTERPRET=1 set before anything imports Triton
("interpret"), or without it ("compile"). Reads a JSON list of jobs on stdin and prints a JSON list, one
outcome per job. interpret: null for a job whose output the evaluator's comparison (its tolerance for the
job's dtype and precision) accepts, else the failure's text. compile: [kernel name, PTX] for each launch
of the job's forward, or the failure's text; or "unavailable" for all, where this Triton cannot. A job:
  template, params         the template by name, and a point of its space
  shape                    [batch, heads, kv_heads, seq_q, seq_k, head_dim]
  causal, scale, dtype     the pattern's (scale null: head_dim ** -0.5)
  precision                the Analysis' (null: the dtype's)
  task                     a built-in suite task whose Model is the reference (its forward's argument names
                           and imports too), or null: F.scaled_dot_product_attention in the job's dtype
  rounds                   the pattern's rounds_scores (the task's scores held in its dtype)
Inputs are drawn as the evaluator draws them by default: normal, mean 0.5, standard deviation 3 (large
scores, a peaked softmax).
The Analysis is built by hand, as the analysis would build it, so that templates are tested apart from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

BUILTIN = Path(__file__).parent.parent / "src" / "kernelwright" / "suites" / "builtin"
INIT = "    def __init__(self):\n        super().__init__()\n"
IMPORTS = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F"


def run_jobs(jobs: list[dict[str, Any]], mode: str = "interpret") -> Any:
    """The jobs' outcomes, from a fresh process (the caller's Triton state is left alone)."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    if mode == "interpret":
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, __file__, mode], input=json.dumps(jobs), capture_output=True, text=True,
                          env=env, cwd=Path(__file__).parent, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} process failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _candidate(job: dict[str, Any], templates: dict[str, Any]) -> tuple[Any, Any]:
    """(the reference forward, the candidate's module) for a job."""
    import importlib.util
    import inspect

    import torch
    import torch.nn.functional as F
    from expert_cases import _module_from

    from kernelwright.generate.expert.patterns import Analysis, Attention, Input

    batch, heads, kv_heads, seq_q, seq_k, head_dim = job["shape"]
    if job["task"]:
        spec = importlib.util.spec_from_file_location(job["task"], BUILTIN / f"{job['task']}.py")
        task = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(task)
        reference, args = task.Model(), tuple(inspect.signature(task.Model.forward).parameters)[1:]
        imports = "\n".join(line for line in (BUILTIN / f"{job['task']}.py").read_text().splitlines()
                            if line.startswith(("import ", "from ")))
    else:
        def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v, is_causal=job["causal"], scale=job["scale"],
                                                  enable_gqa=kv_heads != heads)
        args, imports = ("q", "k", "v"), IMPORTS
    pattern = Attention(Input(0), Input(1), Input(2), job["causal"], job["scale"],
                        (batch, heads, seq_q, seq_k, head_dim), job["dtype"], kv_heads, job["rounds"])
    analysis = Analysis(pattern, args, INIT, imports, outputs_fp32=job["dtype"] != "float32",
                        precision=job["precision"])
    return reference, _module_from(templates[job["template"]].render(analysis, job["params"]))


def _interpret(job: dict[str, Any], templates: dict[str, Any]) -> None:
    import torch

    from kernelwright.evaluate.correctness import compare, tolerance_for

    batch, heads, kv_heads, seq_q, seq_k, head_dim = job["shape"]
    dtype = getattr(torch, job["dtype"])
    reference, candidate = _candidate(job, templates)
    torch.manual_seed(0)
    q = (torch.randn(batch, heads, seq_q, head_dim) * 3 + 0.5).to(dtype)
    k, v = ((torch.randn(batch, kv_heads, seq_k, head_dim) * 3 + 0.5).to(dtype) for _ in range(2))
    with torch.no_grad():
        expected, got = reference(q, k, v), candidate.ModelNew()(q, k, v)
    tolerance = tolerance_for(job["dtype"], job["precision"], frozenset())
    result = compare([got], [expected], tolerance)
    assert result.ok, result.message


def _compile(job: dict[str, Any], templates: dict[str, Any]) -> list[tuple[str, str]]:
    """Each launch of the candidate's forward, recorded on the meta device at the job's shapes, compiled for
    sm_90 with the specializations Triton gives such a launch: pointers (torch allocates them 16-byte
    aligned) and ints that are multiples of 16 divisible by 16, ints equal to 1 constant."""
    import torch
    from sm90_launches import compile_for_sm90, record_launches

    batch, heads, kv_heads, seq_q, seq_k, head_dim = job["shape"]
    _, candidate = _candidate(job, templates)
    launches = record_launches(candidate, ("kw_attention", "kw_decode", "kw_decode_scores", "kw_decode_values", "kw_combine"))
    dtype = getattr(torch, job["dtype"])
    with torch.device("meta"):
        candidate.ModelNew()(torch.empty(batch, heads, seq_q, head_dim, dtype=dtype),
                             *(torch.empty(batch, kv_heads, seq_k, head_dim, dtype=dtype) for _ in range(2)))
    found = []
    for launch in launches:
        found.append((launch[0].__name__, compile_for_sm90(launch).asm["ptx"]))
    return found


def _main(mode: str) -> None:
    assert (os.environ.get("TRITON_INTERPRET") == "1") == (mode == "interpret")
    jobs = json.load(sys.stdin)
    if mode == "compile":
        try:
            from triton.backends.nvidia.compiler import CUDABackend  # noqa: F401
        except ImportError:
            print(json.dumps(["unavailable"] * len(jobs)))
            return
    from kernelwright.generate.expert.templates import triton_attention

    templates = {t.name: t for t in triton_attention.TEMPLATES}
    outcomes: list[Any] = []
    for job in jobs:
        try:
            outcomes.append(_interpret(job, templates) if mode == "interpret" else _compile(job, templates))
        except Exception:
            outcomes.append(f"{job}\n{traceback.format_exc(limit=4)}")
    print(json.dumps(outcomes))


if __name__ == "__main__":
    _main(sys.argv[1])
