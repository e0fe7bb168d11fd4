"""Runs rendered Triton candidates against their cases' references under Triton's CPU interpreter.

Triton decides at import time whether its own library functions (tl.sigmoid,
...) are interpreted, so this runs as a fresh process with TRITON_INTERPRET=1
set before anything imports Triton. Reads a JSON list of jobs on stdin, each
{"case", "template", "params", "rows", "cols", "dtype"}, and prints a JSON list:
null for a job that matched its reference, else the failure's text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any


def run_jobs(jobs: list[dict[str, Any]]) -> list[str | None]:
    """The jobs' outcomes, from a fresh interpreter process (the caller's Triton state is left alone)."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, __file__], input=json.dumps(jobs), capture_output=True, text=True,
                          env=env, cwd=Path(__file__).parent, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the interpreter process failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _main() -> None:
    assert os.environ.get("TRITON_INTERPRET") == "1"
    from expert_cases import CASES, run_in_process

    from kernelwright.generate.expert.templates import all_templates

    templates = {t.name: t for t in all_templates()}
    outcomes: list[str | None] = []
    for job in json.load(sys.stdin):
        case = CASES[job["case"]]
        try:
            source = templates[job["template"]].render(case.analysis(), job["params"])
            run_in_process(case, source, job["rows"], job["cols"], job["dtype"])
            outcomes.append(None)
        except Exception:
            outcomes.append(f"{job}\n{traceback.format_exc(limit=3)}")
    print(json.dumps(outcomes))


if __name__ == "__main__":
    _main()
