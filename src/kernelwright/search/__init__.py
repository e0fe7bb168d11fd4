"""Search strategies by name. Each is a module with `Params` (its knobs, settable in
the config file under [strategies.NAME]) and `search(run, params)`, which loops
`while not run.done`, asking the run for candidates (see search/run.py)."""

from __future__ import annotations

import importlib
from types import ModuleType

STRATEGIES = {
    "refine": "kernelwright.search.refine",
    "best-of-n": "kernelwright.search.best_of_n",
    "evolve": "kernelwright.search.evolve",
    "tree": "kernelwright.search.tree",
    "bandit": "kernelwright.search.bandit",
}


class StrategyError(Exception):
    """An unknown strategy name; one line listing the known ones."""


def get_strategy(name: str) -> ModuleType:
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; one of: {', '.join(STRATEGIES)}")
    return importlib.import_module(STRATEGIES[name])
