"""A test module's jobs, run in a child process: under Triton's CPU interpreter, or compiled for sm_90.

The test module is its own child (`python test_x.py MODE`, the jobs as JSON on stdin, the outcomes as
JSON on the last line of stdout) and ends with
`if __name__ == "__main__": serve(sys.argv[1], {"compile": ..., "interpret": ...})`. TRITON_INTERPRET is
set before the child imports Triton, in the modes whose name starts with "interpret" only (a module may
have several: "interpret", "interpret-pack"), so no mode disturbs the tests' own Triton state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any


def run_child(module_file: str, mode: str, batch: list[dict[str, Any]], timeout: float = 600) -> Any:
    """The outcomes of `batch` from `module_file` run as a child in `mode`: one per job (its handler's
    result, or the failure's text), or "unavailable" when compiling and this Triton has no NVIDIA backend."""
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    if mode.startswith("interpret"):
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, module_file, mode], input=json.dumps(batch), capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} process failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def serve(mode: str, handlers: dict[str, Callable[[dict[str, Any]], Any]]) -> None:
    """The child's side: each job of stdin through `handlers[mode]`, every outcome printed as one JSON list."""
    batch = json.load(sys.stdin)
    if mode == "compile":
        try:
            from triton.backends.nvidia.compiler import CUDABackend  # noqa: F401
        except ImportError:
            print(json.dumps("unavailable"))
            return
    outcomes: list[Any] = []
    for job in batch:
        try:
            outcomes.append(handlers[mode](job))
        except Exception:  # noqa: BLE001  (the test reports every failing job, with its traceback)
            outcomes.append(f"{job}\n{traceback.format_exc(limit=-4)}")
    print(json.dumps(outcomes))
