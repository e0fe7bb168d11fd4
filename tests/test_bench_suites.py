"""Suites for a bench: builtin, a folder, a KernelBench checkout (a tiny fake tree), and --tasks filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.bench.suites import SuiteError, load_suite
from kernelwright.suites import builtin_tasks

# A KernelBench problem as its files are: Model, get_inputs, get_init_inputs, module-level sizes, no KERNELWRIGHT.
PROBLEM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """{doc}"""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


batch_size = 16
dim = 16384


def get_inputs():
    x = torch.randn(batch_size, dim)
    return [x]


def get_init_inputs():
    return []  # No special initialization inputs needed
'''

FILES = {
    "level1": ["1_Square_matrix_multiplication_.py", "19_ReLU.py", "2_Standard_matrix_multiplication_.py",
               "23_Softmax.py", "23_Softmax_OLD.py"],
    "level2": ["1_Conv2D_ReLU_BiasAdd.py", "12_Gemm_Multiply_LeakyReLU.py"],
    "level3": ["1_MLP.py"],
    "level4": ["1_DeepSeek_V3.py"],  # needs models from the network: not loaded
}


@pytest.fixture
def kernelbench(tmp_path: Path) -> Path:
    """A checkout: README, KernelBench/levelN/*.py, and files that are not problems."""
    root = tmp_path / "KernelBench-main"
    for level, names in FILES.items():
        folder = root / "KernelBench" / level
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text(PROBLEM.format(doc=f"{level} {name}"))
        (folder / "README.md").write_text("not a problem\n")
    (root / "KernelBench" / "level1" / "helpers.py").write_text("x = 1\n")  # no NN_ prefix: not a problem
    (root / "README.md").write_text("# KernelBench\n")
    return root


def keys(suite) -> list[str]:  # noqa: ANN001
    return [t.key for t in suite.tasks]


def test_kernelbench_checkout_loads_levels_1_to_3_in_problem_order(kernelbench: Path) -> None:
    suite = load_suite(str(kernelbench))
    assert suite.kind == "kernelbench"
    assert keys(suite) == ["level1/1_Square_matrix_multiplication_", "level1/2_Standard_matrix_multiplication_",
                           "level1/19_ReLU", "level1/23_Softmax", "level2/1_Conv2D_ReLU_BiasAdd",
                           "level2/12_Gemm_Multiply_LeakyReLU", "level3/1_MLP"]
    relu = suite.tasks[2].task
    assert relu.meta.shape_variants == () and relu.name == "19_ReLU"  # loads as it is, default metadata
    assert relu.path == (kernelbench / "KernelBench" / "level1" / "19_ReLU.py").resolve()
    # Its KernelBench/ folder names the same suite.
    assert keys(load_suite(str(kernelbench / "KernelBench"))) == keys(suite)


@pytest.mark.parametrize(("task_filter", "expected"), [
    ("level1/19", ["level1/19_ReLU"]),
    ("level1/19_ReLU", ["level1/19_ReLU"]),
    ("level2", ["level2/1_Conv2D_ReLU_BiasAdd", "level2/12_Gemm_Multiply_LeakyReLU"]),
    ("level1/1,level3/1", ["level1/1_Square_matrix_multiplication_", "level3/1_MLP"]),
    ("*/1_*", ["level1/1_Square_matrix_multiplication_", "level2/1_Conv2D_ReLU_BiasAdd", "level3/1_MLP"]),
    ("level1/*matrix*, level2/*Gemm*", ["level1/1_Square_matrix_multiplication_",
                                        "level1/2_Standard_matrix_multiplication_",
                                        "level2/12_Gemm_Multiply_LeakyReLU"]),
    ("level3/1,level3/1_MLP", ["level3/1_MLP"]),  # named twice, run once
])
def test_kernelbench_filters(kernelbench: Path, task_filter: str, expected: list[str]) -> None:
    assert keys(load_suite(str(kernelbench), task_filter)) == expected


def test_a_problem_id_does_not_match_a_longer_one(kernelbench: Path) -> None:
    # "level1/1" is problem 1, not 19 or 12: ids match exactly, only globs match loosely.
    assert keys(load_suite(str(kernelbench), "level1/1")) == ["level1/1_Square_matrix_multiplication_"]


def test_builtin_and_folder_suites(tmp_path: Path) -> None:
    builtin = load_suite("builtin", "norm_*")
    assert builtin.kind == "builtin" and keys(builtin) and all(k.startswith("norm_") for k in keys(builtin))
    assert len(load_suite("builtin").tasks) == len(builtin_tasks())
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("b_task", "a_task"):
        (folder / f"{name}.py").write_text(PROBLEM.format(doc=name))
    (folder / "_helper.py").write_text("x = 1\n")
    suite = load_suite(str(folder))
    assert suite.kind == "folder" and keys(suite) == ["a_task", "b_task"]
    assert suite.task_filter is None and load_suite(str(folder), "b_*").task_filter == "b_*"


@pytest.mark.parametrize(("spec", "task_filter", "message"), [
    ("nowhere", None, "nowhere: no such suite"),
    ("KB", "level1/99", "'level1/99' names no task"),
    ("KB", "level1/19,levle2", "'levle2' names no task"),
    ("KB", " , ", "no pattern given"),
    ("empty", None, "no task files"),
    ("broken", None, "syntax error"),
])
def test_bad_suites_and_filters_are_one_line(tmp_path: Path, kernelbench: Path, spec: str,
                                             task_filter: str | None, message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.py").write_text("def Model(:\n")
    where = {"KB": str(kernelbench), "nowhere": str(tmp_path / "nowhere")}.get(spec, str(tmp_path / spec))
    with pytest.raises(SuiteError, match=message) as raised:
        load_suite(where, task_filter)
    assert "\n" not in str(raised.value)


def test_a_checkout_without_problems_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "KernelBench" / "level1").mkdir(parents=True)
    with pytest.raises(SuiteError, match="without problem files"):
        load_suite(str(tmp_path))
