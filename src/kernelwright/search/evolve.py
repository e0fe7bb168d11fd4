"""evolve: islands of verified candidates with elites and migration (EvoEngineer, PIKE, OpenEvolve).

Each generation asks every island for one child. A child's parent is one of
the island's elites with chance `exploit` (exploitation), else any member
(exploration); with chance `crossover` it gets two parents to combine instead
of one to mutate. An empty island asks for a draft. Verified children join
their island; an island keeps its `elites` fastest and its newest others up to
`population`. Every `migration_interval` generations each island's best
joins the next island (a ring), so good ideas spread but islands stay distinct.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kernelwright.search.node import Node
from kernelwright.search.run import Request, Run


@dataclass
class Params:
    islands: int = 3
    population: int = 6  # members kept per island
    elites: int = 2  # fastest members per island, never dropped
    exploit: float = 0.7  # chance a parent comes from the elites
    crossover: float = 0.2  # chance a child combines two parents
    migration_interval: int = 3  # generations between migrations


def search(run: Run, params: Params) -> None:
    islands: list[list[Node]] = [[] for _ in range(params.islands)]
    generation = 0
    while not run.done:
        children = run.ask([_request(island, run.rng, params) for island in islands])
        for island, new in zip(islands, children):
            island.extend(node for node in new if node.passed)
            island[:] = _survivors(island, params)
        generation += 1
        if generation % params.migration_interval == 0:
            _migrate(islands)


def _request(island: list[Node], rng: random.Random, params: Params) -> Request:
    if not island:
        return Request("draft")
    first = _select(island, rng, params)
    if len(island) > 1 and rng.random() < params.crossover:
        second = _select([n for n in island if n is not first], rng, params)
        return Request("crossover", (first, second))
    return Request("mutate", (first,))


def _select(island: list[Node], rng: random.Random, params: Params) -> Node:
    ranked = sorted(island, key=_time)
    if rng.random() < params.exploit:
        return rng.choice(ranked[:params.elites])
    return rng.choice(island)


def _survivors(island: list[Node], params: Params) -> list[Node]:
    ranked = sorted(island, key=_time)
    elites = ranked[:params.elites]
    newest = sorted(ranked[params.elites:], key=lambda n: n.seq, reverse=True)
    return elites + newest[:max(0, params.population - len(elites))]


def _migrate(islands: list[list[Node]]) -> None:
    bests = [min(island, key=_time) if island else None for island in islands]
    for i, best in enumerate(bests):
        target = islands[(i + 1) % len(islands)]
        if best is not None and all(n.id != best.id for n in target):
            target.append(best)


def _time(node: Node) -> tuple[float, int]:
    return (node.time_ms if node.time_ms is not None else float("inf"), node.seq)
