"""Never slower: a run's answer is the fastest verified thing, its best candidate or a baseline.

If no candidate beats eager PyTorch and torch.compile, the answer is the
faster of those two, and `best.py` says so and runs it: the reference itself
as `ModelNew`, or the reference under torch.compile. Times compared are from
one measurement session (the best candidate's verdict carries its baselines).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernelwright.search.node import Node
from kernelwright.task import Task


@dataclass
class Answer:
    kind: str  # "candidate", "eager" or "compile"
    time_ms: float | None
    baselines_ms: dict[str, float] = field(default_factory=dict)
    candidate_id: str | None = None
    note: str = ""


def choose(best: Node | None, baselines_ms: dict[str, float]) -> Answer:
    """The fastest of the best candidate and the baselines; a candidate wins ties (it was verified)."""
    if best is not None and best.time_ms is not None:
        baselines_ms = {name: t["median_ms"] for name, t in best.verdict.get("baselines", {}).items()} or baselines_ms
    options = dict(baselines_ms)
    if best is not None and best.time_ms is not None:
        options["candidate"] = best.time_ms
    if not options:
        return Answer("eager", None, {}, note="nothing was measured: no candidate passed and the baselines "
                      "could not be timed; the answer is the reference as it is")
    kind = min(options, key=lambda k: (options[k], k != "candidate"))
    answer = Answer(kind, options[kind], baselines_ms, best.id if kind == "candidate" else None)
    answer.note = _note(answer, best)
    return answer


def source(answer: Answer, task: Task, best: Node | None) -> str:
    """A self-contained candidate file for the answer."""
    if answer.kind == "candidate" and best is not None:
        return best.candidate.source
    if answer.kind == "compile":
        model_new = '''

class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
'''
        return task.source.rstrip() + "\n\nimport torch  # noqa: E402\n" + model_new
    return task.source.rstrip() + '''


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
'''


def _note(answer: Answer, best: Node | None) -> str:
    base = ", ".join(f"{name} {ms:.4g} ms" for name, ms in sorted(answer.baselines_ms.items()))
    if answer.kind == "candidate":
        faster = min(answer.baselines_ms.values(), default=None)
        gain = f"{faster / answer.time_ms:.2f}x faster than the faster baseline" if faster else "no baseline timed"
        return f"the best candidate, {best.candidate.name} ({answer.time_ms:.4g} ms), is {gain} ({base})"
    what = {"eager": "the reference (eager PyTorch)", "compile": "the reference under torch.compile"}[answer.kind]
    why = "no candidate passed" if best is None else \
        f"the best candidate ({best.candidate.name}, {best.time_ms:.4g} ms) is not faster"
    return f"{why}; the answer is {what}: {base}"
