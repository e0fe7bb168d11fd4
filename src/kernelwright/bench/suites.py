"""Suites: the tasks a bench runs.

    builtin                     the built-in suite (src/kernelwright/suites/builtin)
    PATH/                       a folder of task files (or one task file)
    PATH/ (a KernelBench checkout, or its KernelBench/ folder)
                                levels 1 to 3: KernelBench/level1/19_ReLU.py is task
                                "level1/19_ReLU", problem 19 of level 1

A filter (`--tasks`) is a comma-separated list of patterns; a task is chosen
when any pattern names it: its key ("level1/19_ReLU", "softmax_vocab"), a shell
glob over its key ("norm_*", "level2/*Conv*"), and for KernelBench its level
("level1") or level and problem id ("level1/19"). A pattern that names no task
is an error, so a typo never benches the wrong set quietly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from kernelwright.suites import builtin_path
from kernelwright.task import Task, TaskError, load_task, load_tasks

BUILTIN = "builtin"
KERNELBENCH_LEVELS = ("level1", "level2", "level3")  # level 4 needs Hugging Face models from the network
# "19_ReLU.py"; KernelBench keeps superseded versions of some problems as "23_..._OLD.py".
_PROBLEM_FILE = re.compile(r"^(\d+)_.+(?<!_OLD)\.py$")


class SuiteError(Exception):
    """A suite or a filter that cannot be used; one line naming it."""


@dataclass(frozen=True)
class SuiteTask:
    key: str  # unique in its suite; names the task in filters, reports and output folders
    task: Task
    aliases: tuple[str, ...] = ()  # other exact names a filter may use ("level1", "level1/19")


@dataclass(frozen=True)
class Suite:
    name: str  # "builtin" or the path as given
    kind: str  # "builtin", "folder" or "kernelbench"
    tasks: tuple[SuiteTask, ...]
    task_filter: str | None = None


def load_suite(spec: str, task_filter: str | None = None) -> Suite:
    """The suite named by `spec`, narrowed to the tasks `task_filter` chooses (all when None)."""
    if spec == BUILTIN:
        kind, root = "builtin", builtin_path()
    else:
        root = Path(spec).expanduser()
        if not root.exists():
            raise SuiteError(f"{spec}: no such suite (builtin, a folder of task files, or a KernelBench checkout)")
        kind = "kernelbench" if _kernelbench_levels(root) else "folder"
    try:
        tasks = _kernelbench_tasks(root) if kind == "kernelbench" else _folder_tasks(root)
    except TaskError as e:
        raise SuiteError(str(e)) from None
    return Suite(spec, kind, tuple(select(tasks, task_filter, spec)), task_filter)


def select(tasks: list[SuiteTask], task_filter: str | None, where: str = "the suite") -> list[SuiteTask]:
    """The tasks (in suite order) that some pattern of the comma-separated `task_filter` names."""
    if task_filter is None:
        return tasks
    patterns = [p.strip() for p in task_filter.split(",") if p.strip()]
    if not patterns:
        raise SuiteError(f"--tasks {task_filter!r}: no pattern given")
    chosen: set[str] = set()
    for pattern in patterns:
        named = {t.key for t in tasks if _names(pattern, t)}
        if not named:
            raise SuiteError(f"--tasks: {pattern!r} names no task in {where}")
        chosen |= named
    return [t for t in tasks if t.key in chosen]


def _names(pattern: str, entry: SuiteTask) -> bool:
    return pattern == entry.key or pattern in entry.aliases or fnmatchcase(entry.key, pattern)


def _folder_tasks(root: Path) -> list[SuiteTask]:
    return [SuiteTask(task.name, task) for task in sorted(load_tasks(root), key=lambda t: t.name)]


def _kernelbench_levels(root: Path) -> list[Path]:
    """The level folders of a checkout (root/KernelBench/levelN) or of its KernelBench folder (root/levelN)."""
    for base in (root / "KernelBench", root):
        levels = [base / name for name in KERNELBENCH_LEVELS if (base / name).is_dir()]
        if levels:
            return levels
    return []


def _kernelbench_tasks(root: Path) -> list[SuiteTask]:
    entries = []
    for level in _kernelbench_levels(root):
        problems = []
        for path in level.glob("*.py"):
            match = _PROBLEM_FILE.match(path.name)
            if match:
                problems.append((int(match.group(1)), path))
        for problem, path in sorted(problems):
            entries.append(SuiteTask(f"{level.name}/{path.stem}", load_task(path),
                                     aliases=(level.name, f"{level.name}/{problem}")))
    if not entries:
        raise SuiteError(f"{root}: a KernelBench checkout without problem files (NN_Name.py) in its levels")
    return entries
