"""A bench's report (bench.html, bench.json) and the side-by-side comparison of two benches.

Both HTML files stand alone like a run's report: CSS, SVG charts and the
sorting script inline, no URL. The metric rows are listed once here, so the
bench report and the comparison name and format every metric alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from kernelwright.bench.metrics import FAST_P, PASS_AT_K
from kernelwright.bench.results import BenchResult, TaskResult
from kernelwright.report import svg
from kernelwright.report.run import (
    TEMPLATES_ENV, format_duration, format_percent, format_speedup, format_timestamp, format_value,
    ordered_environment, write_atomic,
)

BASELINE_LABELS = {"eager": "eager", "compile": "torch.compile"}


@dataclass(frozen=True)
class MetricRow:
    label: str
    kind: str  # "percent", "speedup", "count", "usd" or "seconds": how to show it and its difference
    value: float | None


def metric_rows(result: BenchResult) -> list[MetricRow]:
    """Every suite metric of `result`, in reading order."""
    m = result.metrics
    rows = [
        MetricRow("tasks scored", "count", m["scored_tasks"]),
        MetricRow("tasks whose reference failed (not scored)", "count", m["task_errors"]),
        MetricRow("candidates evaluated", "count", m["candidates"]),
        MetricRow("correctness rate (tasks with a verified kernel)", "percent", m["correctness_rate"]),
        MetricRow("candidate pass rate", "percent", m["candidate_pass_rate"]),
        MetricRow("compile rate", "percent", m["compile_rate"]),
        MetricRow("shape-variant pass rate", "percent", m["variant_pass_rate"]),
    ]
    rows += [MetricRow(f"pass@{k}", "percent", m["pass_at_k"][str(k)]) for k in PASS_AT_K]
    for baseline in result.baselines:
        label = BASELINE_LABELS.get(baseline, baseline)
        rows += [MetricRow(f"fast_{p:g} vs {label}", "percent", m["fast_p"][baseline][f"{p:g}"]) for p in FAST_P]
        rows.append(MetricRow(f"geomean speedup vs {label} (verified tasks)", "speedup",
                              m["geomean_speedup"][baseline]))
        rows.append(MetricRow(f"geomean speedup of the answer vs {label} (all tasks)", "speedup",
                              m["geomean_answer_speedup"][baseline]))
    rows.append(MetricRow("mean fraction of speed of light (verified tasks)", "percent", m["mean_sol_fraction"]))
    memory = m["memory_bound"]
    rows += [
        MetricRow("memory-bound verified tasks", "count", memory["tasks"]),
        MetricRow("mean fraction of speed of light (memory-bound tasks)", "percent", memory["mean_sol_fraction"]),
        MetricRow(f"memory-bound tasks at {memory['sol_target']:.0%} of speed of light or more", "percent",
                  memory["at_sol_target"]),
    ]
    if "compile" in result.baselines:
        rows.append(MetricRow("torch.compile's own fast_1 over eager", "percent", m["compile_over_eager"]["fast_1"]))
        rows.append(MetricRow("torch.compile's geomean speedup over eager", "speedup",
                              m["compile_over_eager"]["geomean"]))
    cost = m["cost"]
    rows += [
        MetricRow("LLM tokens", "count", cost["tokens"]),
        MetricRow("LLM cost", "usd", cost["cost_usd"]),
        MetricRow("wall time", "seconds", cost["wall_s"]),
        MetricRow("generation time", "seconds", cost["generate_s"]),
        MetricRow("device time (evaluations)", "seconds", cost["device_s"]),
    ]
    return rows


def format_metric(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return {"percent": format_percent, "speedup": format_speedup, "seconds": format_duration,
            "usd": lambda v: f"${v:.4f}", "count": lambda v: f"{v:g}"}[kind](value)


def format_difference(a: float | None, b: float | None, kind: str) -> str:
    """B against A: percentage points for rates, a ratio for speedups, a signed difference otherwise."""
    if a is None or b is None:
        return "-"
    if kind == "percent":
        return f"{100 * (b - a):+.1f} pp"
    if kind == "speedup":
        return f"{b / a:.2f}x" if a else "-"
    if kind == "seconds":
        return ("+" if b >= a else "-") + format_duration(abs(b - a))
    if kind == "usd":
        return f"{b - a:+.4f} $"
    return f"{b - a:+g}"


def _facts(result: BenchResult) -> dict[str, str]:
    """What produced the results, for the report's header and the comparison's first table."""
    budget = " · ".join(f"{k} = {format_value(v)}" for k, v in result.budget.items())
    facts = {
        "what": f"{result.kind} {result.id}",
        "suite": result.suite + (f" (tasks {result.task_filter})" if result.task_filter else ""),
        "generator": result.generator,
        "strategy": result.strategy,
        "budget": budget or "-",
        "baselines": ", ".join(result.baselines) or "-",
        "status": result.status,
        "started": format_timestamp(result.created_at),
    }
    facts.update({k: format_value(v) for k, v in ordered_environment(result.environment).items()})
    return facts


def _speedup_chart(groups: list[str], series: list[tuple[str, list[float | None]]]) -> Markup:
    return Markup(svg.grouped_bar_chart(groups, series, y_label="speedup (x)", reference_line=("1.0x", 1.0)))


def render_bench_html(result: BenchResult) -> str:
    tasks = result.tasks
    keys = [t.key for t in tasks]
    speedups = [(f"vs {BASELINE_LABELS.get(b, b)}", [t.speedup.get(b) for t in tasks]) for b in result.baselines]
    charts = {
        "speedup": _speedup_chart(keys, speedups),
        "sol": Markup(svg.grouped_bar_chart(keys, [("fraction of speed of light", [t.sol_fraction for t in tasks])],
                                            y_label="fraction of speed of light")),
        "cost": Markup(svg.grouped_bar_chart(keys, [("wall", [t.wall_s for t in tasks]),
                                                    ("generation", [t.generate_s for t in tasks]),
                                                    ("device", [t.device_s for t in tasks])],
                                             y_label="seconds")),
    }
    metrics = [(row.label, format_metric(row.value, row.kind)) for row in metric_rows(result)]
    context = {"r": result, "facts": _facts(result), "metrics": metrics, "tasks": tasks, "charts": charts,
               "labels": BASELINE_LABELS}
    return TEMPLATES_ENV.get_template("bench.html.j2").render(context)


@dataclass(frozen=True)
class ComparedTask:
    key: str
    a: TaskResult | None
    b: TaskResult | None

    @property
    def changed(self) -> bool:
        """The task's content differs between A and B: their numbers are not about the same reference."""
        return self.a is not None and self.b is not None and self.a.task_id != self.b.task_id


def compare_tasks(a: BenchResult, b: BenchResult) -> list[ComparedTask]:
    """Tasks of A in A's order, then those only B has; matched by their key in the suite."""
    in_a = {t.key: t for t in a.tasks}
    in_b = {t.key: t for t in b.tasks}
    keys = list(in_a) + [k for k in in_b if k not in in_a]
    return [ComparedTask(k, in_a.get(k), in_b.get(k)) for k in keys]


def compare_metrics(a: BenchResult, b: BenchResult) -> list[tuple[str, str, str, str]]:
    """(metric, A, B, B against A), formatted; a metric only one side has (a baseline the other did
    not time) shows "-" on the other."""
    rows_a = {row.label: row for row in metric_rows(a)}
    rows_b = {row.label: row for row in metric_rows(b)}
    metrics = []
    for label in dict.fromkeys([*rows_a, *rows_b]):
        kind = (rows_a.get(label) or rows_b[label]).kind
        va = rows_a[label].value if label in rows_a else None
        vb = rows_b[label].value if label in rows_b else None
        metrics.append((label, format_metric(va, kind), format_metric(vb, kind), format_difference(va, vb, kind)))
    return metrics


def render_compare_html(a: BenchResult, b: BenchResult) -> str:
    metrics = compare_metrics(a, b)
    facts_a, facts_b = _facts(a), _facts(b)
    facts = [(k, facts_a.get(k, "-"), facts_b.get(k, "-")) for k in dict.fromkeys([*facts_a, *facts_b])]
    tasks = compare_tasks(a, b)
    keys = [t.key for t in tasks]
    charts = {}
    for baseline in dict.fromkeys([*a.baselines, *b.baselines]):
        charts[baseline] = _speedup_chart(keys, [
            ("A", [t.a.speedup.get(baseline) if t.a else None for t in tasks]),
            ("B", [t.b.speedup.get(baseline) if t.b else None for t in tasks]),
        ])
    context = {"a": a, "b": b, "facts": facts, "metrics": metrics, "tasks": tasks, "charts": charts,
               "baselines": list(charts), "labels": BASELINE_LABELS}
    return TEMPLATES_ENV.get_template("compare.html.j2").render(context)


def write_bench_reports(result: BenchResult, folder: Path) -> dict[str, Path]:
    """bench.json and bench.html in `folder` (made if missing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "bench.json", "html": folder / "bench.html"}
    write_atomic(paths["json"], result.to_json())
    write_atomic(paths["html"], render_bench_html(result))
    return paths


def write_compare_report(a: BenchResult, b: BenchResult, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render_compare_html(a, b))
    return path
