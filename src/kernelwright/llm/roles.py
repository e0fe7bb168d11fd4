"""The roles of the LLM generator: their prompts (Jinja2 templates in `prompts/`) and their reply parsers.

    coder     task, parent(s) with their verdicts, the plan, knowledge notes -> a ModelNew (code or edits)
    debugger  a failed candidate and the evaluator's failure -> a fixed ModelNew (code or edits)
    planner   roofline, profile, the run's history -> the next technique, with a reason
    judge     profile metrics -> one bottleneck and one fix

A role's template defines two blocks, `system` and `user`, rendered into the
two messages of a request. Templates hold the wording; the facts they show
are prepared here and in `feedback.py` from the verdict JSON, so every prompt
carries the evaluator's own words (its failure, its times, the hardware it
measured, the rules it enforces).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jinja2

from kernelwright.generate.base import Parent
from kernelwright.llm import feedback
from kernelwright.llm.provider import Message
from kernelwright.llm.replies import ReplyError
from kernelwright.task import Task

ROLES = ("planner", "coder", "debugger", "judge")
_CODE_BLOCK = re.compile(r"(^```[^\n]*\n.*?^```$)", re.MULTILINE | re.DOTALL)
# Techniques the planner is offered: the bandit strategy's arms and the knowledge base's other notes.
TECHNIQUES = ("tiling", "shared_memory", "fusion", "vectorization", "coalescing", "memory_layout", "tensor_cores",
              "lower_precision", "block_sizes", "warps_and_stages", "persistent_kernel", "split_k",
              "online_softmax", "warp_reductions")

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("kernelwright.llm", "prompts"),
    undefined=jinja2.StrictUndefined,  # a fact the code forgot to pass is an error, not an empty line
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,  # an included section ends with its newline, so sections stay apart
    autoescape=False,  # prompts are plain text and code, never HTML
)


@dataclass(frozen=True)
class Plan:
    technique: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"technique": self.technique, "reason": self.reason}


@dataclass(frozen=True)
class Finding:
    bottleneck: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"bottleneck": self.bottleneck, "fix": self.fix}


def messages(role: str, inputs: dict[str, Any]) -> tuple[Message, Message]:
    """The system and user messages of `role`'s prompt for these inputs."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    template = _ENV.get_template(f"{role}.j2")
    context = template.new_context(inputs)
    system, user = ("".join(template.blocks[name](context)).strip() for name in ("system", "user"))
    return Message("system", _tidy(system)), Message("user", _tidy(user))


def _tidy(text: str) -> str:
    """At most one blank line in a row outside code blocks: optional sections leave gaps behind when
    they are empty. Code is left as it is, so that SEARCH text quoted from it matches the file."""
    parts = _CODE_BLOCK.split(text)
    return "".join(part if i % 2 else re.sub(r"\n{3,}", "\n\n", part) for i, part in enumerate(parts))


# -- what the prompts show ---------------------------------------------------------------------

def task_view(task: Task, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """The reference and its numerics: dtype, the precision admitted, the tolerance the evaluator used."""
    meta = task.meta
    tolerance = next(((v.get("correctness") or {}).get("tolerance") for v in verdicts
                      if (v.get("correctness") or {}).get("tolerance")), None)
    numerics = [f"inputs and parameters in {meta.dtype}" if meta.dtype else "dtypes as get_inputs() makes them"]
    if meta.precision:
        numerics.append(f"the lowest arithmetic admitted is {meta.precision}")
    if tolerance:
        numerics.append(f"outputs are compared at {tolerance.get('precision')} precision with "
                        f"rtol {tolerance.get('rtol'):g} and atol {tolerance.get('atol'):g}")
    elif meta.atol is not None or meta.rtol is not None:
        numerics.append(f"outputs are compared with rtol {meta.rtol} and atol {meta.atol}")
    return {
        "name": task.name,
        "source": task.source.strip(),
        "shape_variants": [", ".join(f"{k}={v}" for k, v in variant.items()) for variant in meta.shape_variants],
        "numerics": "; ".join(numerics) + ".",
        "allow_ops": list(meta.allow_ops),
    }


def parent_view(parent: Parent, label: str) -> dict[str, Any]:
    """A parent as the prompts show it: its source and the evaluator's verdict, digested."""
    verdict = parent.verdict
    passed = parent.passed
    return {
        "label": label,
        "source": parent.candidate.source.strip(),
        "status": verdict.get("status", "not evaluated"),
        "reason": feedback.failure(verdict)["reason"],
        "failure": None if passed else feedback.failure(verdict),
        "performance": feedback.performance(verdict),
        "roofline": feedback.roofline(verdict) if passed else None,
        "profile": feedback.profile(verdict),
    }


# -- parsing the small replies -----------------------------------------------------------------

def parse_plan(text: str) -> Plan:
    """The planner's choice: a JSON object {"technique", "reason"}, or TECHNIQUE: ... REASON: ... lines."""
    fields = _fields(text, ("technique", "reason"))
    if not fields.get("technique"):
        raise ReplyError('The reply names no technique. Answer with one JSON object: '
                         '{"technique": "...", "reason": "..."}')
    return Plan(fields["technique"].strip(" `*_."), fields.get("reason", "").strip())


def parse_finding(text: str) -> Finding:
    """The judge's reading: a JSON object {"bottleneck", "fix"}, or BOTTLENECK: ... FIX: ... lines."""
    fields = _fields(text, ("bottleneck", "fix"))
    if not fields.get("bottleneck") or not fields.get("fix"):
        raise ReplyError('The reply does not name both a bottleneck and a fix. Answer with one JSON object: '
                         '{"bottleneck": "...", "fix": "..."}')
    return Finding(fields["bottleneck"].strip(" `*_"), fields["fix"].strip(" `*_"))


def _fields(text: str, names: tuple[str, str]) -> dict[str, str]:
    """`names` read from the last JSON object in the text that has the first of them, else from
    `NAME: value` lines (a value runs until the next name)."""
    for match in reversed(list(re.finditer(r"\{.*?\}", text, re.DOTALL))):
        try:
            data = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(data, dict):
            lowered = {str(k).lower(): v for k, v in data.items()}
            if lowered.get(names[0]):
                return {n: str(lowered.get(n, "")) for n in names}
    pattern = re.compile(rf"^\W*({'|'.join(names)})\W*:\s*(.*?)(?=^\W*(?:{'|'.join(names)})\W*:|\Z)",
                         re.IGNORECASE | re.MULTILINE | re.DOTALL)
    return {m.group(1).lower(): " ".join(m.group(2).split()) for m in pattern.finditer(text)}
