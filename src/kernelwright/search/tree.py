"""tree: best-first tree search with bounded branching and pruning (STARK, orchestrated multi-agent search).

The root is the task; expanding it asks for `branching` drafts. Then the
fastest open node is expanded: `branching` improvements of it. A child that
fails is pruned; so is one that does not beat its parent by `min_gain` (a
plateau), and one at `max_depth`. When no node is open the root is expanded
again, at most `restarts` times; then the search has nothing left to try.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelwright.search.node import Node
from kernelwright.search.run import Request, Run


@dataclass
class Params:
    branching: int = 3  # children per expansion
    max_depth: int = 5  # a node this deep is not expanded
    min_gain: float = 0.01  # a child must be this much faster than its parent to stay open
    restarts: int = 2  # fresh expansions of the root once every branch is pruned


def search(run: Run, params: Params) -> None:
    open_nodes: list[Node] = []
    depth: dict[str, int] = {}
    root_expansions = 0
    while not run.done:
        if open_nodes:
            parent: Node | None = min(open_nodes, key=lambda n: (n.time_ms, n.seq))
            open_nodes.remove(parent)
            requests = [Request("improve", (parent,)) for _ in range(params.branching)]
        elif root_expansions <= params.restarts:
            parent = None
            root_expansions += 1
            requests = [Request("draft") for _ in range(params.branching)]
        else:
            run.finish("tree search: every branch is pruned")
            return
        for child in (node for nodes in run.ask(requests) for node in nodes):
            depth[child.id] = depth[parent.id] + 1 if parent else 1
            if _stays_open(child, parent, depth[child.id], params):
                open_nodes.append(child)


def _stays_open(child: Node, parent: Node | None, depth: int, params: Params) -> bool:
    if not child.passed or depth >= params.max_depth:
        return False
    return parent is None or child.beats(parent, params.min_gain)
