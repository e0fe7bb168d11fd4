"""Task suites that ship with kernelwright.

`builtin/` holds our own tasks in KernelBench format: pointwise ops, reductions,
norms, softmax and losses, matmuls, convolutions, attention and fused blocks,
each with shapes taken from a named real model, a `KERNELWRIGHT` dict of shape
variants (the last one small enough for a CPU) and the dtype the model runs in.
"""

from __future__ import annotations

from pathlib import Path

from kernelwright.task import Task, load_tasks

SUITES_DIR = Path(__file__).resolve().parent


def builtin_path() -> Path:
    """The folder of the built-in suite's task files."""
    return SUITES_DIR / "builtin"


def builtin_tasks() -> list[Task]:
    """Every built-in task, sorted by name."""
    return sorted(load_tasks(builtin_path()), key=lambda t: t.name)
