"""The expert's candidates through the real evaluator on the CPU, with Triton interpreted, at small shapes.

Shared by the template families' tests: one quick evaluator per test module (a private cache with the
CPU's ceilings seeded, few seeds and timing runs) and a suite task rewritten to small shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from private_cache import seed_ceilings

BUILTIN = Path(__file__).parent.parent / "src" / "kernelwright" / "suites" / "builtin"


def quick_evaluator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """For a module fixture (`yield from`): the cache is set before any worker is spawned (they inherit it)."""
    from kernelwright.evaluate.evaluator import Evaluator
    from kernelwright.evaluate.options import EvalOptions
    from kernelwright.paths import CACHE_ENV

    root = tmp_path_factory.mktemp("kernelwright-cache")
    seed_ceilings(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(root))
        options = EvalOptions(device="cpu", interpret_triton=True, seeds=2, baselines=("eager",),
                              timing_budget_s=0.1, min_runs=2, max_runs=3, warmup_runs=1, spare_workers=0)
        with Evaluator(options) as evaluator:
            yield evaluator


def small_suite_copy(name: str, folder: Path, main: dict[str, int], variant: dict[str, int]) -> Path:
    """The built-in task `name` with a small main shape and one small variant (the interpreter is slow)."""
    text = (BUILTIN / f"{name}.py").read_text()
    for key, value in main.items():
        text = re.sub(rf"^{key} = \d+$", f"{key} = {value}", text, flags=re.M)
    text = re.sub(r'"shape_variants": \[.*?\],', f'"shape_variants": [{json.dumps(variant)}],', text, flags=re.S)
    path = folder / f"{name}.py"
    path.write_text(text)
    return path
