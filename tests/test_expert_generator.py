"""The expert generator: what it proposes for each intent, its tuning cache, and a default run on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelwright.generate import get_generator
from kernelwright.generate.base import Context, Parent
from kernelwright.generate.expert.patterns import Unsupported
from kernelwright.task import load_task

ROOT = Path(__file__).parent
GELU = load_task(ROOT / "fixtures" / "tasks" / "gelu.py")
SOFTMAX = load_task(ROOT / "fixtures" / "tasks" / "softmax.py")


def passed(candidate, time_ms: float = 1.0) -> Parent:  # noqa: ANN001
    return Parent(candidate, {"status": "passed", "time": {"median_ms": time_ms}})


@pytest.fixture
def expert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path))  # a tuning cache of the test's own
    return get_generator("expert:cpu")


def test_a_draft_is_the_template_defaults_and_records_template_params_and_precision(expert) -> None:  # noqa: ANN001
    (draft,) = expert.propose(GELU, Context("draft", seed=1))
    meta = draft.metadata
    assert meta["template"] == "cpu.pointwise" and meta["params"] and meta["precision"].startswith("fp32")
    assert "class ModelNew" in draft.source and "cpu.compile(" in draft.source


def test_mutation_changes_one_parameter_and_crossover_mixes_parents(expert) -> None:  # noqa: ANN001
    (draft,) = expert.propose(SOFTMAX, Context("draft", seed=1))
    for seed in range(5):
        (child,) = expert.propose(SOFTMAX, Context("mutate", (passed(draft),), seed=seed))
        changed = {k for k, v in child.metadata["params"].items() if draft.metadata["params"][k] != v}
        assert len(changed) == 1 and child.metadata["template"] == draft.metadata["template"]
    (other,) = expert.propose(SOFTMAX, Context("mutate", (passed(draft),), seed=11))
    (mixed,) = expert.propose(SOFTMAX, Context("crossover", (passed(draft), passed(other)), seed=3))
    assert all(mixed.metadata["params"][k] in (draft.metadata["params"][k], other.metadata["params"][k])
               for k in mixed.metadata["params"])


def test_a_source_the_run_has_seen_is_drawn_again(expert) -> None:  # noqa: ANN001
    (first,) = expert.propose(GELU, Context("draft", seed=1))
    history = ({"id": first.id},)
    (second,) = expert.propose(GELU, Context("draft", seed=1, history=history))
    assert second.id != first.id


def test_the_best_parameters_are_remembered_for_the_next_run(expert) -> None:  # noqa: ANN001
    (draft,) = expert.propose(GELU, Context("draft", seed=1))
    (tuned,) = expert.propose(GELU, Context("mutate", (passed(draft),), seed=4))
    expert.propose(GELU, Context("improve", (passed(tuned, 0.5),), seed=5, best=passed(tuned, 0.5)))
    (next_run_draft,) = expert.propose(GELU, Context("draft", seed=1))
    assert next_run_draft.metadata["params"] == tuned.metadata["params"]


def test_an_op_no_template_covers_is_named(expert, tmp_path: Path) -> None:  # noqa: ANN001
    task_file = tmp_path / "matmul.py"
    task_file.write_text("import torch\nimport torch.nn as nn\n\nclass Model(nn.Module):\n"
                         "    def forward(self, a, b):\n        return torch.matmul(a, b)\n\n"
                         "def get_inputs():\n    return [torch.randn(8, 8), torch.randn(8, 8)]\n\n"
                         "def get_init_inputs():\n    return []\n")
    with pytest.raises(Unsupported, match="(?i)no cpu template writes a matmul"):  # Triton's do
        expert.propose(load_task(task_file), Context("draft"))


def test_optimize_with_no_generator_named_uses_the_expert_on_the_cpu(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kernelwright", "optimize", str(ROOT / "fixtures" / "tasks" / "softmax.py"),
         "--budget", "3", "--strategy", "refine", "--config", str(ROOT / "fixtures" / "runs" / "cpu_quick.toml"),
         "--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=400, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "run.json").read_text())
    assert summary["counts"].get("passed", 0) == 3, result.stdout  # every template point verified
    assert "expert" in result.stdout
