"""The report of one optimization run, as Markdown and as one self-contained HTML file.

A RunReport is plain data, built from the store by the caller; this module only
lays it out. Both formats show the same sections: the run and its environment,
the answer, the best speedup over the candidates, the verdict counts, what
the run spent per role (tokens, dollars, LLM and device time), every
candidate, and the winning source. The HTML holds its CSS, its charts and its
script inline and refers to no URL, so it can be mailed or archived as is.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from kernelwright.evaluate.verdict import Status
from kernelwright.report import svg
from kernelwright.report.costs import RunCosts, format_usd
from kernelwright.search.answer import Answer

TEMPLATES = Path(__file__).parent / "templates"
REASON_CHARS = 160  # a reason is often a traceback: the table shows its start, the HTML title the rest
ENVIRONMENT_KEYS = ("device_name", "torch", "triton", "cuda", "driver", "python", "kernelwright")


@dataclass
class NodeRow:
    seq: int
    candidate_id: str
    name: str
    status: str
    reason: str
    time_ms: float | None
    speedup_eager: float | None
    speedup_compile: float | None
    sol_fraction: float | None  # floor time / candidate time, 0..1
    parents: list[str]
    intent: str
    technique: str | None
    generator: str
    backends: list[str]


@dataclass
class RunReport:
    run_id: str
    task_name: str
    task_path: str
    strategy: str
    generator: str
    seed: int
    status: str
    stop_reason: str | None
    created_at: float
    elapsed_s: float
    environment: dict[str, Any]  # device_name, torch, triton, cuda, driver, python, kernelwright
    budget: dict[str, Any]  # e.g. {"candidates": 20, "max_tokens": None, ...}
    nodes: list[NodeRow]
    answer: Answer | None
    best_source: str | None
    usage: dict[str, Any]  # {"calls", "tokens", "cost", "latency_s"}
    duplicates: int = 0
    generator_errors: list[str] = field(default_factory=list)
    costs: RunCosts | None = None  # per role; None for a report made without the store's accounting

    def status_counts(self) -> dict[str, int]:
        """Count of nodes per status that occurs, passed first, then failures in verdict order.

        Statuses the verdict does not know (from a newer store) come last, by name.
        """
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.status] = counts.get(node.status, 0) + 1
        known = [s.value for s in Status]
        order = known + sorted(s for s in counts if s not in known)
        return {s: counts[s] for s in order if s in counts}

    def trajectory(self) -> list[tuple[int, float | None]]:
        """(seq, best speedup vs eager among passed nodes up to it) for every node in seq order."""
        best: float | None = None
        points: list[tuple[int, float | None]] = []
        for node in sorted(self.nodes, key=lambda n: n.seq):
            if node.status == Status.PASSED.value and _finite(node.speedup_eager):
                best = node.speedup_eager if best is None else max(best, node.speedup_eager)
            points.append((node.seq, best))
        return points


# ---- number and text formatting, shared by both templates as filters ----


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def format_ms(value: float | None) -> str:
    """Four significant digits, never in exponent form: 0.01234, 1.234, 1234."""
    if not _finite(value):
        return "-"
    if value == 0:
        return "0"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_speedup(value: float | None) -> str:
    return f"{value:.2f}x" if _finite(value) else "-"


def format_percent(fraction: float | None) -> str:
    return f"{fraction * 100:.1f}%" if _finite(fraction) else "-"


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def format_timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else "-"


def format_value(value: Any) -> str:
    """A budget, usage or environment value: '-' when unset, floats kept short."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def truncate(text: str, limit: int = REASON_CHARS) -> str:
    text = " ".join(text.split())  # a traceback's newlines would break a table row
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_cell(text: object) -> str:
    """Text safe inside a Markdown table cell: one line, its pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code_fence(source: str) -> str:
    """A backtick fence longer than any run of backticks in the source, so none closes it early."""
    longest = max((len(run) for run in re.findall(r"`+", source)), default=0)
    return "`" * max(3, longest + 1)


# ---- rendering ----


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # Only the HTML is escaped: Markdown shows data verbatim (escaping its own table cells).
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, not the reader
    )
    env.filters.update(
        ms=format_ms,
        speedup=format_speedup,
        percent=format_percent,
        value=format_value,
        truncate_reason=truncate,
        md=markdown_cell,
        usd=format_usd,
        duration=format_duration,
    )
    return env


TEMPLATES_ENV = _environment()  # shared by the bench reports (report/bench.py)


def _improvements(trajectory: list[tuple[int, float | None]]) -> list[tuple[int, float]]:
    """The points where the best speedup rose: the trajectory without its flat stretches."""
    steps: list[tuple[int, float]] = []
    for seq, best in trajectory:
        if best is not None and (not steps or best > steps[-1][1]):
            steps.append((seq, best))
    return steps


def _comparison(answer: Answer) -> list[tuple[str, float | None, float | None]]:
    """(what, median ms, the answer's speedup over it) for the answer and each baseline it has."""
    rows: list[tuple[str, float | None, float | None]] = [("answer", answer.time_ms, None)]
    for key, label in (("eager", "eager (reference)"), ("compile", "torch.compile")):
        baseline = answer.baselines_ms.get(key)
        if baseline is None:
            continue
        speedup = baseline / answer.time_ms if _finite(answer.time_ms) and answer.time_ms > 0 else None
        rows.append((label, baseline, speedup))
    return rows


def ordered_environment(environment: dict[str, Any]) -> dict[str, Any]:
    """The environment's usual keys first, in a fixed order (missing ones as None), then any others."""
    ordered = {k: environment.get(k) for k in ENVIRONMENT_KEYS}
    ordered.update({k: v for k, v in environment.items() if k not in ordered})
    return ordered


def _context(report: RunReport) -> dict[str, Any]:
    answer = report.answer
    winner = None
    if answer is not None and answer.kind == "candidate":
        winner = next((n for n in report.nodes if n.candidate_id == answer.candidate_id), None)
    environment = ordered_environment(report.environment)
    return {
        "r": report,
        "answer": answer,
        "comparison": _comparison(answer) if answer is not None else [],
        "winner": winner,
        "environment": environment,
        "nodes": sorted(report.nodes, key=lambda n: n.seq),
        "counts": report.status_counts(),
        "improvements": _improvements(report.trajectory()),
        "created": format_timestamp(report.created_at),
        "elapsed": format_duration(report.elapsed_s),
    }


def render_markdown(report: RunReport) -> str:
    context = _context(report)
    context["fence"] = code_fence(report.best_source or "")
    return TEMPLATES_ENV.get_template("run.md.j2").render(context)


def render_html(report: RunReport) -> str:
    context = _context(report)
    points = [(float(seq), best) for seq, best in report.trajectory() if best is not None]
    chart = svg.line_chart(
        [("best speedup vs eager", points)],
        x_label="candidate (seq)",
        y_label="speedup vs eager",
        step=True,
        reference_line=("eager = 1.0x", 1.0),
    )
    context["trajectory_svg"] = Markup(chart)  # svg.py escapes every text it writes
    return TEMPLATES_ENV.get_template("run.html.j2").render(context)


def write_atomic(path: Path, text: str) -> None:
    # A reader (a browser refreshing, a CI upload) never sees half a report.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_reports(report: RunReport, folder: Path) -> dict[str, Path]:
    """Write report.md and report.html into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / "report.md", "html": folder / "report.html"}
    write_atomic(paths["markdown"], render_markdown(report))
    write_atomic(paths["html"], render_html(report))
    return paths
