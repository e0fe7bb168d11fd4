"""Fakes for search tests: an evaluator that reads a candidate's fate from its source, and generators.

A fake candidate's source holds `FAKE = {"status": ..., "time_ms": ...}`; the
fake evaluator turns that into verdict JSON with an eager baseline of 1.0 ms
and a compile baseline of 0.8 ms, instantly, and counts its calls.
"""

from __future__ import annotations

import re

from kernelwright import pysource
from kernelwright.candidate import Candidate
from kernelwright.generate.base import Context

EAGER_MS, COMPILE_MS, FLOOR_MS = 1.0, 0.8, 0.05


def fake_source(name: str, status: str = "passed", time_ms: float | None = 1.0, note: str = "") -> str:
    return (f'"""{name}{note}"""\nFAKE = {{"status": {status!r}, "time_ms": {time_ms!r}}}\n\n'
            "class ModelNew:\n    pass\n")


def fake_verdict(source: str) -> dict:
    match = re.search(r"^FAKE = (.*)$", source, re.M)
    # The search evaluates fakes from its pool's threads: they parse through pysource's lock.
    fate = pysource.literal(match.group(1)) if match else {"status": "static_rejected", "time_ms": None}
    verdict = {"status": fate["status"], "reason": f"fake {fate['status']}", "time": None, "baselines": {},
               "speedup": {}, "speed_of_light": None}
    if fate["status"] == "passed":
        t = fate["time_ms"]
        verdict.update(time={"median_ms": t, "iqr_ms": 0.0, "runs": 10},
                       baselines={"eager": {"median_ms": EAGER_MS, "iqr_ms": 0, "runs": 10},
                                  "compile": {"median_ms": COMPILE_MS, "iqr_ms": 0, "runs": 10}},
                       speedup={"eager": EAGER_MS / t, "compile": COMPILE_MS / t},
                       speed_of_light={"floor_ms": FLOOR_MS, "fraction": FLOOR_MS / t})
    return verdict


class FakeEvaluations:
    key = "fake-eval"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[str] = []  # candidate names, in the order evaluated
        self.fail_after = fail_after  # raise (a simulated crash) on this call

    async def evaluate(self, task, candidate: Candidate) -> dict:  # noqa: ANN001
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise SystemExit("simulated crash")
        self.calls.append(candidate.name)
        return fake_verdict(candidate.source)

    def baselines(self, task):  # noqa: ANN001, ANN201
        from kernelwright.evaluate.verdict import Timing

        return {"eager": Timing(EAGER_MS, 0.0, 10), "compile": Timing(COMPILE_MS, 0.0, 10)}, {}


class ClimbingGenerator:
    """A draft is level 0; each child of a parent is one level up, and level k runs in 1/(k+1) ms.
    Every fifth request (by seed) writes a failing candidate. Deterministic in (parents, seed)."""

    name = "climbing"

    def propose(self, task, context: Context) -> list[Candidate]:  # noqa: ANN001
        level = 1 + max((_level(p.candidate.source) for p in context.parents), default=-1)
        if context.seed % 5 == 0:
            return [Candidate(fake_source(f"fail-{context.seed}", "incorrect", None), f"fail{context.seed}")]
        return [Candidate(fake_source(f"level {level}", "passed", round(1.0 / (level + 1), 6),
                                      note=f" seed {context.seed}"), f"L{level}-{context.seed % 1000}")]


class RaisingGenerator:
    name = "raising"

    def propose(self, task, context: Context) -> list[Candidate]:  # noqa: ANN001
        raise RuntimeError("the model endpoint is on fire")


def _level(source: str) -> int:
    match = re.search(r'"""level (\d+)', source)
    return int(match.group(1)) if match else 0
