"""Generators by name: `NAME` or `NAME:ARGUMENT` (say `scripted:examples/candidates`).

`expert` (the default: templates, no network; `expert:cpu` or `expert:triton`
picks the backend), `llm` (LLM roles; `llm:PIPELINE` picks them, say `llm:coder`) and
`scripted:FOLDER` are built in; others are plugins, found through the
`kernelwright.generators` entry-point group. A factory takes the argument after
the colon (or None), and the run's `config` and `store` as keywords if it names
them, and returns a Generator.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from kernelwright.generate.base import Context, Generator, GeneratorError, Parent

__all__ = ["Context", "Generator", "GeneratorError", "Parent", "available", "get_generator"]

ENTRY_POINT_GROUP = "kernelwright.generators"

# name -> "module:factory", imported only when chosen.
BUILTIN: dict[str, str] = {
    "expert": "kernelwright.generate.expert.generator:ExpertGenerator",
    "llm": "kernelwright.generate.llm:from_spec",
    "scripted": "kernelwright.generate.scripted:ScriptedGenerator",
}


def available() -> list[str]:
    """Every generator name this installation knows: built-ins and plugins."""
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def get_generator(spec: str, **resources: Any) -> Generator:
    """The generator named by `spec` ("NAME" or "NAME:ARGUMENT"); GeneratorError says what is wrong.

    `resources` are what a run can lend a generator (its `config`, its `store`); each goes to a
    factory that names it as a keyword parameter, so factories that need none are unchanged."""
    name, _, argument = spec.partition(":")
    factory = _factory(name)
    wanted = inspect.signature(factory).parameters
    generator = factory(argument or None, **{k: v for k, v in resources.items() if k in wanted})
    if not isinstance(generator, Generator):
        raise GeneratorError(f"generator {name!r} does not implement propose(task, context)")
    return generator


def _factory(name: str) -> Callable[[str | None], Generator]:
    if name in BUILTIN:
        module, _, attribute = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attribute)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return entry.load()
    raise GeneratorError(f"unknown generator {name!r}; available: {', '.join(available())}")
