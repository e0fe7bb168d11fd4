"""refine: one lineage, refined round after round (CUDA-LLM, CudaForge).

Each round asks for one candidate: a repair of the last one when it failed
(at most `max_repairs` in a row, so a lineage that cannot be fixed is left),
otherwise an improvement of the best so far; a draft while there is neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwright.search.node import Node
from kernelwright.search.run import Request, Run


@dataclass
class Params:
    max_repairs: int = 3  # repairs in a row before going back to the best (or a fresh draft)


def search(run: Run, params: Params) -> None:
    last: Node | None = None
    repairs = 0
    while not run.done:
        if last is not None and not last.passed and repairs < params.max_repairs:
            request = Request("repair", (last,))
            repairs += 1
        else:
            request = Request("improve", (run.best,)) if run.best else Request("draft")
            repairs = 0
        new = run.ask([request])[0]
        if new:
            last = new[-1]
