"""`kernelwright optimize` on a real GPU: every GPU evaluates, the answer is never slower than the baselines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernelwright.store import Store

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_optimize_the_example_task_with_the_example_kernels(tmp_path: Path) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "kernelwright", "optimize", str(EXAMPLES / "tasks" / "swish_residual.py"),
         "--generator", f"scripted:{EXAMPLES / 'candidates'}", "--strategy", "best-of-n", "--budget", "3",
         "--target-sol", "1.0", "--db", str(db), "--out", str(out)],
        capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    with Store(db) as store:
        (record,) = store.list_runs()
        nodes = store.nodes(record.id)
    assert len(nodes) == 3
    assert all(n.verdict["status"] == "passed" for n in nodes), [n.verdict["reason"] for n in nodes]
    assert all(n.verdict["environment"]["device"] == "cuda" for n in nodes)
    answer = json.loads((out / "run.json").read_text())["answer"]
    fastest = min([n.verdict["time"]["median_ms"] for n in nodes]
                  + [t["median_ms"] for t in nodes[0].verdict["baselines"].values()])
    best_node = min(nodes, key=lambda n: n.verdict["time"]["median_ms"])
    # Never slower: the answer's time is the fastest of the candidates and the baselines of its session.
    assert answer["time_ms"] <= fastest * 1.05
    assert answer["kind"] in ("candidate", "eager", "compile")
    if answer["kind"] == "candidate":
        assert answer["candidate_id"] == best_node.candidate_id
