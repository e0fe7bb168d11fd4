"""The example tasks (examples/tasks; the README's main command runs one): each loads as a task and the expert
writes kernels for it on both backends; the README's example's first C++ draft passes the evaluator on this
machine's CPU, at its main shape and its variant."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from expert_tasks import analysis_of
from interpreted_evaluation import quick_evaluator

from kernelwright.evaluate.verdict import Status
from kernelwright.generate.base import Context
from kernelwright.generate.expert.generator import ExpertGenerator
from kernelwright.generate.expert.templates import all_templates
from kernelwright.task import load_task

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "tasks").glob("*.py"))


def readme_example() -> Path:
    """The task file of the README's main command (`kernelwright optimize TASK ...`)."""
    match = re.search(r"kernelwright optimize (\S+\.py)", (ROOT / "README.md").read_text())
    assert match, "the README names no task for `kernelwright optimize`"
    return ROOT / match.group(1)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_each_example_loads_and_the_expert_has_kernels_for_it_on_both_backends(path: Path) -> None:
    analysis = analysis_of(path)
    assert {t.backend for t in all_templates() if t.matches(analysis)} == {"triton", "cpu"}


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from quick_evaluator(tmp_path_factory)


def test_the_readme_example_s_first_cpu_draft_passes_the_evaluator(evaluator) -> None:
    path = readme_example()
    assert path in EXAMPLES
    task = load_task(path)
    generator = ExpertGenerator("cpu")
    try:
        (draft,) = generator.propose(task, Context("draft", seed=0))
    finally:
        generator.close()  # stops the analysis process it starts ahead
    verdict = evaluator.evaluate(task, draft)
    assert verdict.status is Status.PASSED, f"{draft.name}: {verdict.reason}"
