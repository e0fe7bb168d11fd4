"""The run commands of `kernelwright`: optimize, runs, show.

Registered on the app of `kernelwright.cli` (imported at its end).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from kernelwright.cli import _bad_input, app, console, errors
from kernelwright.cli_options import (
    DEFAULT_DB, BaseUrlFlag, BudgetFlag, ConfigFlag, DbFlag, DeviceFlag, GeneratorFlag, InterpretFlag, MaxCostFlag,
    MaxTokensFlag, ModelFlag, PlateauFlag, ProviderFlag, SeedFlag, StrategyFlag, TargetSolFlag, TimeLimitFlag,
    apply_flags,
)
from kernelwright.config import Config, ConfigError, load_config
from kernelwright.search import StrategyError
from kernelwright.store import Store, StoreError
from kernelwright.task import TaskError, load_task

if TYPE_CHECKING:  # imported when used: the reports load jinja2, and the CLI starts fast without it
    from kernelwright.report.costs import RoleCost, RunCosts

EXIT_INTERRUPTED = 130
_BAD_INPUT = (TaskError, ConfigError, StoreError, StrategyError)


@app.command()
def optimize(
    task_path: Path = typer.Argument(..., metavar="TASK.py", help="KernelBench-format task to optimize."),
    generator: GeneratorFlag = None,
    model: ModelFlag = None,
    base_url: BaseUrlFlag = None,
    provider: ProviderFlag = None,
    strategy: StrategyFlag = None,
    budget: BudgetFlag = None,
    max_tokens: MaxTokensFlag = None,
    max_cost: MaxCostFlag = None,
    time_limit: TimeLimitFlag = None,
    target_sol: TargetSolFlag = None,
    plateau: PlateauFlag = None,
    seed: SeedFlag = None,
    device: DeviceFlag = None,
    interpret: InterpretFlag = False,
    config_path: ConfigFlag = None,
    db: DbFlag = DEFAULT_DB,
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for best.py and the reports (default kernelwright-runs/RUN)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run (id or unique prefix)."),
) -> None:
    """Search for a faster verified kernel; writes best.py and a report. Running the same command
    again continues an interrupted run."""
    from kernelwright.generate import GeneratorError

    try:
        config = load_config(config_path) if config_path else Config()
        apply_flags(config, generator=generator, strategy=strategy, budget=budget, max_tokens=max_tokens,
                    max_cost=max_cost, time_limit=time_limit, target_sol=target_sol, plateau=plateau, seed=seed,
                    device=device, interpret=interpret, model=model, base_url=base_url, provider=provider)
        task = load_task(task_path)
        store = Store(db)
    except (*_BAD_INPUT, GeneratorError) as e:
        _bad_input(str(e))
    # Imported once the settings are known to be good: they load torch, which takes seconds.
    from kernelwright.report.costs import run_costs
    from kernelwright.search.controller import RunBusyError, optimize as run_optimize
    from kernelwright.search.run import ResumeError

    progress = _Progress(config)
    try:
        with store, Live(get_renderable=progress.render, console=console, refresh_per_second=4,
                         transient=True) as live:
            progress.live = live
            outcome = run_optimize(task, config, store, out, resume=resume, on_start=progress.start,
                                   on_progress=progress.update)
            costs = run_costs(store, outcome.record.id)
    except KeyboardInterrupt:
        errors.print(f"interrupted; everything so far is in {db}. Run the same command to continue"
                     + (f" (run {progress.run_id})" if progress.run_id else "") + ".", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (*_BAD_INPUT, GeneratorError, RunBusyError, ResumeError) as e:
        _bad_input(str(e))
    _print_outcome(outcome, costs)


@app.command()
def runs(db: Path = typer.Option(DEFAULT_DB, "--db", help="The store to read.")) -> None:
    """List the runs in a store, newest first."""
    store = _open(db)
    with store:
        records = store.list_runs()
        table = Table(Column("run", no_wrap=True), Column("task", no_wrap=True), "strategy", "generator", "status",
                      "candidates", "passed", "best", Column("started", no_wrap=True))
        for record in records:
            nodes = store.nodes(record.id)
            passed = [n for n in nodes if n.verdict and n.verdict.get("status") == "passed"]
            best = max((max((n.verdict.get("speedup") or {}).values(), default=0) for n in passed), default=None)
            table.add_row(record.id, record.task_name, record.strategy, escape(record.generator), record.status,
                          f"{len(nodes)}/{record.config.get('budget', {}).get('candidates', '?')}", str(len(passed)),
                          f"{best:.2f}x" if best else "-", time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at)))
    console.print(table if records else f"no runs in {db}")


@app.command()
def show(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id or a unique prefix of one."),
    db: Path = typer.Option(DEFAULT_DB, "--db", help="The store to read."),
    source: Optional[int] = typer.Option(None, "--source", metavar="SEQ", help="Print the source of candidate SEQ."),
) -> None:
    """Show one run: its settings, answer and every candidate's verdict."""
    from kernelwright.report.build import run_report

    store = _open(db)
    with store:
        try:
            report = run_report(store, run_id)
            if source is not None:
                row = next((n for n in report.nodes if n.seq == source), None)
                if row is None:
                    _bad_input(f"run {report.run_id} has no candidate {source} (0..{len(report.nodes) - 1})")
                print(store.get_source(row.candidate_id))
                return
        except StoreError as e:
            _bad_input(str(e))
    console.print(f"[bold]run {report.run_id}[/]: {escape(report.task_name)} ({escape(report.task_path)}), "
                  f"{report.strategy} with {escape(report.generator)}, seed {report.seed}")
    console.print(f"status {report.status}" + (f": {escape(report.stop_reason)}" if report.stop_reason else ""))
    table = Table("#", Column("name", no_wrap=True), "status", "ms", "vs eager", "vs compile", "SOL", "reason")
    for n in report.nodes:
        table.add_row(str(n.seq), escape(n.name), n.status, _num(n.time_ms, "{:.4g}"), _num(n.speedup_eager, "{:.2f}x"),
                      _num(n.speedup_compile, "{:.2f}x"), _num(n.sol_fraction, "{:.0%}"),
                      escape(_first_line(n.reason, 70)))
    console.print(table)
    if report.answer:
        console.print(f"[bold]answer[/]: {escape(report.answer.note)}")


class _Progress:
    """The live line during a run, and one printed line per evaluated candidate."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.run = None
        self.run_id: str | None = None
        self.live: Live | None = None
        self.printed = 0

    def start(self, run, resumed: bool) -> None:  # noqa: ANN001  (a Run)
        self.run, self.run_id = run, run.id
        verb = "continuing" if resumed else "starting"
        self._print(f"{verb} run {run.id}: {run.task.name} with {run.config.strategy} / {run.generator.name}, "
                    f"budget {run.config.budget.candidates} candidates")

    def update(self, run) -> None:  # noqa: ANN001
        for node in run.nodes[self.printed:]:
            time_part = f" {node.time_ms:.4g} ms, {node.speedup():.2f}x vs eager" if node.passed else ""
            self._print(f"  #{node.seq} {node.candidate.name}: {node.status}{time_part}"
                        + ("" if node.passed else f" ({_first_line(node.verdict.get('reason', ''))})"))
        self.printed = len(run.nodes)

    def render(self) -> Text:
        run = self.run
        if run is None:
            return Text("starting evaluators ...", style="dim")
        counts = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items()))
        best = run.best
        best_part = (f"best {best.speedup():.2f}x vs eager ({best.time_ms:.4g} ms)" if best else "no pass yet")
        left = ""
        if run.config.budget.time_limit_s:
            left = f" · {max(0, run.config.budget.time_limit_s - run.elapsed_s):.0f} s left"
        return Text(f"{len(run.nodes)}/{run.config.budget.candidates} candidates · {run.in_flight} evaluating · "
                    f"{counts or 'no verdicts yet'} · {best_part} · {run.elapsed_s:.0f} s{left}")

    def _print(self, line: str) -> None:
        (self.live.console if self.live else console).print(line, markup=False, highlight=False)


def _print_outcome(outcome, costs: RunCosts) -> None:  # noqa: ANN001  (an Outcome)
    from kernelwright.report.run import format_duration

    record, answer, best = outcome.record, outcome.answer, outcome.best
    table = Table(title=f"run {record.id}: {record.status}", show_header=False)
    table.add_row("stopped", escape(record.stop_reason or ""))
    total = costs.total
    table.add_row("wall time", f"{format_duration(costs.wall_s)} (LLM calls {format_duration(total.llm_s)}, "
                               f"evaluations {format_duration(total.device_s)} of device time)")
    evaluated = sum(n for status, n in outcome.counts.items() if status not in ("duplicate", "generator_error"))
    table.add_row("candidates", f"{evaluated} evaluated: " + ", ".join(
        f"{n} {status}" for status, n in sorted(outcome.counts.items(), key=lambda item: -item[1])))
    if best:
        sol = f", {best.sol_fraction:.0%} of speed of light" if best.sol_fraction is not None else ""
        table.add_row("best candidate", escape(f"{best.candidate.name}: {best.time_ms:.4g} ms, "
                                               + ", ".join(f"{s:.2f}x vs {b}" for b, s in best.verdict["speedup"].items())
                                               + sol))
    if answer:
        style = "green" if answer.kind == "candidate" else "yellow"
        table.add_row("answer", f"[{style}]{answer.kind}[/]: {escape(answer.note)}")
    for name, path in outcome.files.items():
        table.add_row(name, escape(str(path)))
    console.print(table)
    if costs.has_llm:
        console.print(costs_table(costs))


def costs_table(costs: RunCosts) -> Table:
    """Per role: its LLM calls, tokens, dollars and seconds, and the device time of what it wrote."""
    from kernelwright.report.costs import format_usd
    from kernelwright.report.run import format_duration

    table = Table("role", *(Column(name, justify="right") for name in (
        "LLM calls", "tokens in", "tokens out", "cost", "LLM time", "candidates", "device time")),
        title="spent per role")

    def cells(c: RoleCost) -> list[str]:
        return [escape(c.role), f"{c.calls}" + (f" (+{c.failed} failed)" if c.failed else ""),
                f"{c.input_tokens:,}", f"{c.output_tokens:,}", escape(format_usd(c)), format_duration(c.llm_s),
                str(c.candidates), format_duration(c.device_s)]

    for row in costs.roles:
        table.add_row(*cells(row))
    if len(costs.roles) > 1:
        table.add_row(*cells(costs.total), style="bold")
    return table


def _open(db: Path) -> Store:
    if not db.exists():
        _bad_input(f"{db}: no such store (pass --db, or run `kernelwright optimize` first)")
    try:
        return Store(db)
    except StoreError as e:
        _bad_input(str(e))


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)




def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."
