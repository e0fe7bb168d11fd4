"""best-of-n: independent attempts in parallel, stopping at the first that meets a target (KernelFalcon).

Attempts go out `parallel` at a time, all drafts from the task alone. After
each batch, the first verified candidate (in request order, so a resumed run
stops at the same one) that is `target_speedup` times faster than the faster
baseline ends the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwright.search.node import Node
from kernelwright.search.run import Request, Run


@dataclass
class Params:
    parallel: int = 4  # attempts asked for at once
    target_speedup: float | None = 1.0  # against the faster baseline; None: spend the whole budget


def search(run: Run, params: Params) -> None:
    while not run.done:
        batch = run.ask([Request("draft") for _ in range(params.parallel)])
        for node in (node for nodes in batch for node in nodes):
            if _meets(node, params.target_speedup):
                run.finish(f"target: {node.candidate.name} is {_against_faster(node):.2f}x faster than "
                           f"the faster baseline (target {params.target_speedup:g}x)")
                return


def _against_faster(node: Node) -> float:
    speedups = node.verdict.get("speedup") or {}
    return min(speedups.values()) if speedups else 0.0


def _meets(node: Node, target: float | None) -> bool:
    return target is not None and node.passed and _against_faster(node) >= target
