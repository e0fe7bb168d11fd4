"""Small KernelBench task files for the expert's tests, and their analysis.

One writer for the tasks the analysis and template tests make up (a forward of one line over globals,
by default rows x cols), and one call for a task's analysis in this process.
"""

from __future__ import annotations

from pathlib import Path

from kernelwright.generate.expert.analysis import analyze_in_process
from kernelwright.generate.expert.patterns import Analysis
from kernelwright.task import load_task


def write_task(folder: Path, name: str, forward: str, inputs: str, init: str = "pass", args: str = "x", *,
               header: str = "rows = 8\ncols = 32", init_params: str = "cols", init_inputs: str = "[cols]") -> Path:
    """`folder/name.py`: `header` (globals, helpers) after the imports, Model(init_params) running `init` after
    super().__init__(), forward(args) returning `forward`, get_inputs returning `inputs`."""
    lines = ["import torch", "import torch.nn as nn", "import torch.nn.functional as F", "", header, "", "",
             "class Model(nn.Module):",
             f"    def __init__(self, {init_params}):", "        super().__init__()", f"        {init}", "",
             f"    def forward(self, {args}):", f"        return {forward}", "", "",
             "def get_inputs():", f"    return {inputs}", "", "",
             "def get_init_inputs():", f"    return {init_inputs}", ""]
    path = folder / f"{name}.py"
    path.write_text("\n".join(lines))
    return path


def analysis_of(path: Path, dtype: str | None = None) -> Analysis:
    """The task's analysis, as if its dtype were `dtype` (a candidate is rendered for the dtype it runs in)."""
    task = load_task(path)
    return analyze_in_process(str(task.path), task.meta.to_dict() | ({"dtype": dtype} if dtype else {}))
