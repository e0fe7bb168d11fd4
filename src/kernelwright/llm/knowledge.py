"""The knowledge base: short notes per optimization technique and per op pattern, for the prompts.

Each note is a Markdown file in `knowledge/` with a small header:

    ---
    title: Online softmax
    kind: technique            (or: pattern, named pattern_<name>: pattern_softmax)
    keys: online_softmax, softmax, attention, ...   (techniques: what names them)
    backends: cpu              (optional: only for these backends)
    ---
    When it helps ... ## Triton ... ## CUDA ... ## CPU ... Pitfalls ...

Notes are chosen by what the task is (its op pattern: the expert generator's
analysis of the forward when it succeeds, else keywords in the source), the
technique the planner or the strategy picked, and the bottleneck the judge
named; sections for other backends are dropped, and the whole selection fits
a token budget.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from importlib import resources

from kernelwright import backends
from kernelwright.llm.feedback import approx_tokens
from kernelwright.task import Task

# Section headings that belong to one backend; a note's other sections are for every backend.
_BACKEND_SECTIONS = {"Triton": backends.TRITON, "CUDA": backends.CUDA_NVRTC, "CPU": backends.CPU}
# Words in a task's source -> patterns: the fallback when the expert analysis does not cover the task.
_SOURCE_PATTERNS = (
    (re.compile(r"scaled_dot_product_attention|MultiheadAttention|attention", re.I), "attention"),
    (re.compile(r"\bconv\w*|Conv[123]d|ConvTranspose"), "conv"),
    (re.compile(r"matmul|\bmm\b|\bbmm\b|addmm|nn\.Linear|F\.linear|einsum|\s@\s"), "matmul"),
    (re.compile(r"log_softmax|softmax|logsumexp", re.I), "softmax"),
    (re.compile(r"layer_norm|LayerNorm|rms_norm|RMSNorm|group_norm|GroupNorm|batch_norm|BatchNorm"), "norm"),
    (re.compile(r"\.(sum|mean|amax|amin|max|min|argmax|argmin|prod|var|std)\(|torch\.(sum|mean|max|min)\("),
     "reduction"),
)


_PATTERNS: dict[str, tuple[str, ...]] = {}  # task id -> its patterns
_PATTERNS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Note:
    name: str  # the file's stem
    title: str
    kind: str  # "technique" or "pattern"
    keys: tuple[str, ...]
    body: str
    only_for: tuple[str, ...] = ()  # the backends it is written for (its `backends:` line); empty: all

    def fits(self, backend: str) -> bool:
        return not self.only_for or backend in self.only_for

    def text(self, backend: str) -> str:
        """The note with the sections of other backends left out."""
        parts = re.split(r"^## (.+)$", self.body, flags=re.MULTILINE)
        family = backends.CUDA_NVRTC if backend == backends.CUDA_INLINE else backend
        kept = [parts[0].strip()]
        for heading, section in zip(parts[1::2], parts[2::2]):
            if _BACKEND_SECTIONS.get(heading.strip(), family) == family:
                kept.append(section.strip())
        return "\n\n".join(p for p in kept if p)


@functools.cache
def notes() -> tuple[Note, ...]:
    """Every note of the package's knowledge folder, in name order."""
    folder = resources.files("kernelwright.llm").joinpath("knowledge")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".md")), key=lambda f: f.name)
    return tuple(_parse(f.name[:-3], f.read_text(encoding="utf-8")) for f in files)


def _parse(name: str, text: str) -> Note:
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.DOTALL)
    if not match:
        raise ValueError(f"knowledge note {name}.md: no '---' header")
    header = dict(line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)
    def listed(field: str) -> tuple[str, ...]:
        return tuple(k.strip().lower() for k in header.get(field, "").split(",") if k.strip())

    return Note(name, header.get("title", name).strip(), header.get("kind", "technique").strip(), listed("keys"),
                match.group(2).strip(), listed("backends"))


def task_patterns(task: Task) -> tuple[str, ...]:
    """The op patterns of a task: from the expert analysis of its forward, plus keywords of its source.
    Worked out once per task (the analysis runs the task's code in a process of its own)."""
    # Proposals run in threads, several at once: they wait for one analysis rather than each starting
    # its own process (three processes importing torch at once cost a 2-core machine half a minute).
    with _PATTERNS_LOCK:
        if task.id not in _PATTERNS:
            _PATTERNS[task.id] = _task_patterns(task)
        return _PATTERNS[task.id]


def _task_patterns(task: Task) -> tuple[str, ...]:
    found: list[str] = []
    try:
        from kernelwright.generate.expert.analysis import analyze
        from kernelwright.generate.expert.patterns import Norm, Pointwise, RowReduce

        pattern = analyze(task).pattern
        if isinstance(pattern, Pointwise):
            found.append("pointwise")
        elif isinstance(pattern, Norm):
            found.append("norm")
        elif isinstance(pattern, RowReduce):
            found.append("softmax" if pattern.kind in ("softmax", "log_softmax", "logsumexp") else "reduction")
    except Exception:  # noqa: BLE001  (the analysis covers few op families; the keywords cover the rest)
        pass
    found.extend(name for regex, name in _SOURCE_PATTERNS if regex.search(_forward_source(task.source)))
    if not found:
        found.append("pointwise")
    return tuple(dict.fromkeys(found))


def _forward_source(source: str) -> str:
    """The text from `class Model` on: a task's module docstring and imports say little about its ops."""
    start = source.find("class Model")
    return source[start:] if start >= 0 else source


def select(patterns: tuple[str, ...] | list[str], technique: str | None = None, bottleneck: str | None = None,
           backend: str = backends.TRITON, budget_tokens: int = 1500) -> list[tuple[str, str]]:
    """(title, text) of the notes that fit the budget, most relevant first: the technique asked for,
    the task's patterns, then techniques whose keys the bottleneck's words name."""
    chosen: list[Note] = []

    def add(matching: list[Note]) -> None:
        chosen.extend(n for n in matching if n not in chosen)

    every = [n for n in notes() if n.fits(backend)]
    techniques = [n for n in every if n.kind == "technique"]
    if technique:
        wanted = technique.lower().replace(" ", "_").replace("-", "_")
        # The note of that name, else the first whose keys name it (say "block_sizes": tiling).
        add([n for n in techniques if n.name == wanted][:1] or [n for n in techniques if wanted in n.keys][:1])
    for pattern in patterns:
        add([n for n in every if n.kind == "pattern" and n.name == f"pattern_{pattern}"])
    add([n for n in techniques if n.only_for])  # a note written for this backend alone is always useful
    if bottleneck:
        words = set(re.findall(r"[a-z_]+", bottleneck.lower()))
        scored = sorted(((len(words & set(n.keys)), n.name, n) for n in techniques),
                        key=lambda s: (-s[0], s[1]))
        add([n for score, _, n in scored if score > 0][:2])
    selected, used = [], 0
    for note in chosen:
        text = note.text(backend)
        cost = approx_tokens(note.title + text) + 4
        if used + cost > budget_tokens:
            continue
        selected.append((note.title, text))
        used += cost
    return selected
