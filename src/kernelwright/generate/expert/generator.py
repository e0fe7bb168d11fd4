"""The expert generator: analysis → template → parameters, and tuning by mutation.

    draft      the template's default parameters (or the best this machine found
               before for this task: the tuning cache), then random points
    improve /  one parameter of the parent changed (the technique, when given,
    mutate     says which: block sizes, warps, vectorization, ...)
    repair     the parent failed: another template, or the defaults
    crossover  each parameter from one of the two parents

A proposal whose source the run has already seen is re-drawn (up to
MAX_DRAWS times), so a search keeps finding new points until the space is spent.
Everything follows from the task and the context (its seed), as the generator
interface requires.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

from kernelwright import environment
from kernelwright.candidate import Candidate
from kernelwright.generate.base import Context, Parent
from kernelwright.generate.expert.analysis import analyze, release
from kernelwright.generate.expert.patterns import Analysis, Unsupported
from kernelwright.generate.expert.templates import Template, all_templates, defaults
from kernelwright.paths import cache_dir
from kernelwright.task import Task

MAX_DRAWS = 20
BACKENDS = ("triton", "cpu")
# Which parameters a named technique turns (the bandit's arms); others: any parameter.
TECHNIQUE_PARAMS = {
    "block_sizes": ("BLOCK", "BLOCK_M", "BLOCK_N", "BLOCK_K", "BLOCK_I"),
    "tiling": ("BLOCK", "BLOCK_M", "BLOCK_N", "BLOCK_K", "BLOCK_I"),
    "warps_and_stages": ("num_warps", "num_stages"), "vectorization": ("BLOCK", "schedule", "unroll"),
    "memory_layout": ("strategy", "GROUP_M"), "persistent_kernel": ("strategy",), "shared_memory": ("strategy",),
    "split_k": ("SPLIT_K", "SPLIT"), "lower_precision": ("accumulate", "precision"), "tensor_cores": ("precision",),
}
# The `precision` parameter of matrix templates: the arithmetic each value means.
ARITHMETIC = {"ieee": "fp32", "tf32": "tf32 tensor cores", "bf16": "bf16 tensor cores", "fp16": "fp16 tensor cores"}


class ExpertGenerator:
    name = "expert"

    def __init__(self, backend: str | None = None) -> None:
        if backend is not None and backend not in BACKENDS:
            from kernelwright.generate.base import GeneratorError

            raise GeneratorError(f"expert backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        # On the GPU when there is one, on the CPU otherwise.
        self.backend = backend or ("triton" if environment.default_device() == "cuda" else "cpu")

    def close(self) -> None:
        """Release the analysis's spare process (see analysis.release)."""
        release()

    def propose(self, task: Task, context: Context) -> list[Candidate]:
        analysis = analyze(task)
        templates = [t for t in all_templates() if t.backend == self.backend and t.matches(analysis)]
        if not templates:
            raise Unsupported(f"no {self.backend} template writes a {type(analysis.pattern).__name__.lower()} "
                              f"({analysis.pattern.dtype})")
        seen = {h["id"] for h in context.history}
        rng = random.Random(context.seed)
        if context.best is not None:
            _remember_best(task, context.best)
        proposals = []
        for _ in range(context.count):
            for draw in range(MAX_DRAWS):
                template, params = self._choose(task, analysis, templates, context, rng, first=draw == 0)
                candidate = _render(template, analysis, params)
                if candidate.id not in seen:
                    break
            seen.add(candidate.id)
            proposals.append(candidate)
        return proposals

    def _choose(self, task: Task, analysis: Analysis, templates: list[Template], context: Context,
                rng: random.Random, first: bool) -> tuple[Template, dict[str, Any]]:
        by_name = {t.name: t for t in templates}
        parents = [p for p in context.parents if p.candidate.metadata.get("template") in by_name]
        if context.intent == "crossover" and len(parents) == 2:
            a, b = (p.candidate.metadata for p in parents)
            if a["template"] == b["template"]:
                template = by_name[a["template"]]
                return template, {k: rng.choice([a["params"][k], b["params"][k]]) for k in a["params"]}
        if parents and context.intent in ("improve", "mutate", "crossover") or (
                parents and context.intent == "repair" and parents[0].passed):
            meta = parents[0].candidate.metadata
            template = by_name[meta["template"]]
            return template, _mutate(template.space(analysis), meta["params"], context.technique, rng)
        if parents and context.intent == "repair":  # the parent failed: another template, or its defaults
            others = [t for t in templates if t.name != parents[0].candidate.metadata["template"]]
            template = rng.choice(others) if others else templates[0]
            return template, defaults(template, analysis)
        # A draft: template k's remembered best (or its defaults) for the first drafts, then random points.
        k = context.ordinal
        if first and k < len(templates):
            template = templates[k]
            remembered = _remembered(task, template)
            valid = remembered is not None and all(
                remembered.get(name) in values for name, values in template.space(analysis).items())
            return template, remembered if valid else defaults(template, analysis)
        template = rng.choice(templates)
        return template, {name: rng.choice(values) for name, values in template.space(analysis).items()}


def _mutate(space: dict[str, tuple], params: dict[str, Any], technique: str | None,
            rng: random.Random) -> dict[str, Any]:
    """One parameter changed to another allowed value (one the technique names, when it names any)."""
    movable = [k for k, v in space.items() if len(v) > 1]
    # A chain's parameters carry their stage (s1_BLOCK_M): the technique names them without it.
    preferred = [k for k in movable if re.sub(r"^s\d+_", "", k) in TECHNIQUE_PARAMS.get(technique or "", ())]
    if not movable:
        return dict(params)
    key = rng.choice(preferred or movable)
    choices = [v for v in space[key] if v != params.get(key)]
    return {**params, key: rng.choice(choices)}


def _render(template: Template, analysis: Analysis, params: dict[str, Any]) -> Candidate:
    source = template.render(analysis, params)
    label = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    precision = _precision(analysis, params)
    return Candidate(source, f"{template.name}-{label}"[:80],
                     {"template": template.name, "params": params, "precision": precision})


def _precision(analysis: Analysis, params: dict[str, Any]) -> str:
    """What arithmetic the candidate does, as its metadata records it: fp32 unless the template says."""
    dtype = analysis.pattern.dtype
    # A chain's stages each have theirs (s1_precision, ...).
    chosen = [v for k, v in params.items() if k == "precision" or re.fullmatch(r"s\d+_precision", k)]
    if chosen:
        arithmetic = " and ".join(dict.fromkeys(ARITHMETIC[v] for v in chosen))
    elif (type(analysis.pattern).__name__ in ("Matmul", "Projections", "Attention", "Chain")
          and dtype in ("bfloat16", "float16")):
        arithmetic = f"{dtype} tensor cores"  # products of the task's own dtype, accumulated in fp32
    else:
        arithmetic = "fp32"
    return f"{arithmetic} arithmetic, fp32 accumulation" + (f", {dtype} storage" if dtype != "float32" else "")


# -- the tuning cache: the best parameters found per task, device and versions -------------------

def _cache_path(task: Task, template_name: str) -> Path:
    key = f"{task.id}_{environment.current().key()}_{template_name}"
    return cache_dir("expert") / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _remember_best(task: Task, best: Parent) -> None:
    """Keep the run's best parameters for the next run's first draft, unless an earlier run did better."""
    meta = best.candidate.metadata
    if "template" not in meta or not best.passed:
        return
    path = _cache_path(task, meta["template"])
    time_ms = best.verdict["time"]["median_ms"]
    try:
        if json.loads(path.read_text())["time_ms"] <= time_ms:
            return
    except (OSError, ValueError, KeyError):
        pass
    path.write_text(json.dumps({"params": meta["params"], "time_ms": time_ms}))


def _remembered(task: Task, template: Template) -> dict[str, Any] | None:
    path = _cache_path(task, template.name)
    try:
        return json.loads(path.read_text())["params"]
    except (OSError, ValueError, KeyError):
        return None
