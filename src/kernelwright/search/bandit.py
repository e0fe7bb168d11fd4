"""bandit: UCB1 over optimization techniques (KernelBand).

Each round picks the technique with the highest upper confidence bound (one
never tried comes first, in list order) and asks for the best candidate
improved with it. The reward is the relative improvement over the best at the
time of asking, (best time / child time - 1) clipped to [0, 1]; a failed or
slower child earns 0. Before anything has passed, requests are drafts with the
chosen technique, and a verified draft earns 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kernelwright.search.node import Node
from kernelwright.search.run import Request, Run

TECHNIQUES = ("tiling", "fusion", "vectorization", "memory_layout", "tensor_cores", "block_sizes",
              "warps_and_stages", "persistent_kernel", "lower_precision", "shared_memory")


@dataclass
class Params:
    techniques: tuple[str, ...] = TECHNIQUES
    # UCB1's c. Rewards are relative gains, mostly 0.05-0.5, so the textbook 1.4 would
    # keep trying techniques that never paid; 0.5 still retries each now and then.
    exploration: float = 0.5
    parallel: int = 1  # techniques tried at once (the top ones by bound)


def search(run: Run, params: Params) -> None:
    pulls = {t: 0 for t in params.techniques}
    rewards = {t: 0.0 for t in params.techniques}
    while not run.done:
        chosen = _choose(pulls, rewards, params)
        base = run.best
        requests = [Request("improve", (base,), technique=t) if base else Request("draft", technique=t)
                    for t in chosen]
        for technique, new in zip(chosen, run.ask(requests)):
            pulls[technique] += 1
            rewards[technique] += _reward(base, new)


def upper_bound(pulls: int, reward: float, total: int, exploration: float) -> float:
    if pulls == 0:
        return math.inf
    return reward / pulls + exploration * math.sqrt(math.log(max(total, 1)) / pulls)


def _choose(pulls: dict[str, int], rewards: dict[str, float], params: Params) -> list[str]:
    total = sum(pulls.values())
    order = sorted(params.techniques, key=lambda t: (-upper_bound(pulls[t], rewards[t], total, params.exploration),
                                                     params.techniques.index(t)))
    return order[:max(1, params.parallel)]


def _reward(base: Node | None, new: list[Node]) -> float:
    times = [n.time_ms for n in new if n.time_ms is not None]
    if not times:
        return 0.0
    if base is None or base.time_ms is None:
        return 1.0
    return max(0.0, min(1.0, base.time_ms / min(times) - 1.0))
