"""The bench commands of `kernelwright`: bench, and report --compare.

Registered on the app of `kernelwright.cli` (imported at its end).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kernelwright.cli import _bad_input, app, console, errors
from kernelwright.cli_options import (
    DEFAULT_DB, BaseUrlFlag, BudgetFlag, ConfigFlag, DbFlag, DeviceFlag, GeneratorFlag, InterpretFlag, MaxCostFlag,
    MaxTokensFlag, ModelFlag, PlateauFlag, ProviderFlag, SeedFlag, StrategyFlag, TargetSolFlag, TimeLimitFlag, apply_flags,
)
from kernelwright.cli_runs import _BAD_INPUT, EXIT_INTERRUPTED
from kernelwright.config import Config, load_config
from kernelwright.store import BenchTaskRecord, Store, StoreError

if TYPE_CHECKING:  # imported when used: they load torch, and the CLI starts fast without it
    from kernelwright.bench.progress import RunStatus
    from kernelwright.bench.results import BenchResult, TaskResult


@app.command()
def bench(
    suite_spec: str = typer.Argument(..., metavar="SUITE",
                                     help="builtin, a folder of task files, or a KernelBench checkout."),
    tasks: Optional[str] = typer.Option(None, "--tasks", "-t",
                                        help="Comma-separated task names or globs: level1/19, level2/*Conv*, norm_*."),
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
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for bench.json, bench.html and each task's run "
                                                           "(default kernelwright-bench/BENCH)."),
    lanes: Optional[int] = typer.Option(None, "--lanes", min=1, help="Tasks run side by side, each lane on its own "
                                        "GPUs (default: one lane per GPU; one on the CPU)."),
) -> None:
    """Optimize every task of a suite (one run per task, the same settings as optimize) and report the
    suite's metrics. Running the same command again continues an interrupted bench."""
    from kernelwright.bench.runner import run_bench
    from kernelwright.bench.suites import SuiteError, load_suite
    from kernelwright.generate import GeneratorError, get_generator
    from kernelwright.search.controller import DEFAULT_GENERATOR, RunBusyError
    from kernelwright.search.run import ResumeError

    try:
        config = load_config(config_path) if config_path else Config()
        apply_flags(config, generator=generator, strategy=strategy, budget=budget, max_tokens=max_tokens,
                    max_cost=max_cost, time_limit=time_limit, target_sol=target_sol, plateau=plateau, seed=seed,
                    device=device, interpret=interpret, model=model, base_url=base_url, provider=provider)
        suite = load_suite(suite_spec, tasks)
        store = Store(db)
        # Made once here so that a bad --generator, [llm] or [agents] fails now, in one line; the bench
        # (each of its lanes) makes its own from the same config.
        get_generator(config.generator or DEFAULT_GENERATOR, config=config, store=store)
    except (*_BAD_INPUT, SuiteError, GeneratorError) as e:
        _bad_input(str(e))
    progress = _BenchProgress(f"the {suite.kind} suite {suite.name}")
    try:
        with store, Live(get_renderable=progress.render, console=console, refresh_per_second=4,
                         transient=True) as live:
            progress.live = live
            outcome = run_bench(suite, config, store, out, progress=progress, lanes=lanes)
    except KeyboardInterrupt:
        errors.print(f"interrupted; everything so far is in {db}. Run the same command to continue"
                     + (f" (bench {progress.bench_id})" if progress.bench_id else "") + ".", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (*_BAD_INPUT, GeneratorError, RunBusyError, ResumeError) as e:
        _bad_input(str(e))
    from kernelwright.report.bench import format_metric, metric_rows

    table = Table(title=f"bench {outcome.result.id}: {outcome.result.status}", show_header=False)
    for row in metric_rows(outcome.result):
        table.add_row(escape(row.label), format_metric(row.value, row.kind))
    for name, path in outcome.files.items():
        table.add_row(name, escape(str(path)))
    console.print(table)


@app.command()
def report(
    compare: tuple[str, str] = typer.Option(..., "--compare", metavar="A B", help="Two bench results: bench.json "
                                            "files (or their folders), or bench or run ids in the store."),
    db: Path = typer.Option(DEFAULT_DB, "--db", help="The store that holds the ids."),
    out: Path = typer.Option(Path("compare.html"), "--out", help="The HTML file to write."),
) -> None:
    """Put two bench results side by side in one HTML file (two generators, two models, two machines)."""
    from kernelwright.bench.results import ResultsError
    from kernelwright.report.bench import compare_metrics, write_compare_report

    try:
        a, b = (_results(name, db) for name in compare)
    except (ResultsError, StoreError) as e:
        _bad_input(str(e))
    table = Table("metric", f"A: {escape(a.label)}", f"B: {escape(b.label)}", "B against A")
    for label, value_a, value_b, difference in compare_metrics(a, b):
        table.add_row(escape(label), value_a, value_b, difference)
    console.print(table)
    console.print(f"wrote {escape(str(write_compare_report(a, b, out)))}", soft_wrap=True)  # a path must not wrap


def _results(name: str, db: Path) -> BenchResult:
    """A bench.json (or a folder holding one), else a bench id, else a run id in the store."""
    from kernelwright.bench.results import bench_result, load_results, run_result

    path = Path(name)
    if path.is_dir() and (path / "bench.json").is_file():
        path = path / "bench.json"
    if path.is_file():
        return load_results(path)
    if not db.exists():
        raise StoreError(f"{name}: no such bench.json, and no store {db} to look it up in (pass --db)")
    with Store(db) as store:
        try:
            return bench_result(store, name)
        except StoreError as bench_missing:
            try:
                return run_result(store, name)
            except StoreError:
                raise StoreError(f"{name}: no such bench.json, bench or run ({bench_missing})") from None


class _BenchProgress:
    """One line per task as it starts and ends; the live view shows one line per task in progress."""

    def __init__(self, suite: str) -> None:
        self.suite = suite
        self.live: Live | None = None
        self.bench_id: str | None = None
        self.active: dict[int, tuple[str, str, RunStatus | None]] = {}  # seq -> ("[i/n]", task key, its run)

    def bench_started(self, bench_id: str, resumed: bool, total: int) -> None:
        self.bench_id = bench_id
        self._print(f"{'continuing' if resumed else 'starting'} bench {bench_id}: {total} tasks of {self.suite}")

    def task_skipped(self, index: int, total: int, result: TaskResult) -> None:
        self._print(f"[{index + 1}/{total}] {result.key}: done before, {_task_line(result)}")

    def task_started(self, index: int, total: int, row: BenchTaskRecord) -> None:
        self.active[index] = (f"[{index + 1}/{total}]", row.task_key, None)

    def run_started(self, index: int, status: RunStatus, resumed: bool) -> None:
        position, key, _ = self.active[index]
        self.active[index] = (position, key, status)
        self._print(f"{position} {key}: {'continuing' if resumed else 'starting'} run {status.run_id}")

    def run_progress(self, index: int, status: RunStatus) -> None:
        position, key, _ = self.active[index]
        self.active[index] = (position, key, status)

    def task_finished(self, index: int, total: int, result: TaskResult) -> None:
        self.active.pop(index, None)
        self._print(f"[{index + 1}/{total}] {result.key}: {_task_line(result)}")

    def stopping(self, lanes: int, grace_s: float) -> None:
        self._print(f"Ctrl-C: {lanes} lane(s) recording their runs (killed after {grace_s:.0f} s) ...")

    def lane_stopped(self, lane: int, seconds: float, killed: bool) -> None:
        self._print(f"lane {lane} {'killed' if killed else 'stopped'} after {seconds:.1f} s")

    def render(self) -> Text:
        lines = []
        for position, key, run in self.active.values():
            if run is None:
                lines.append(f"{position} {key}: starting ...")
                continue
            best = f"best {run.best_speedup:.2f}x vs eager" if run.best_speedup is not None else "no pass yet"
            lines.append(f"{position} {key}: {run.candidates}/{run.budget} candidates · {run.in_flight} evaluating"
                         f" · {best} · {run.elapsed_s:.0f} s")
        return Text("\n".join(lines), style="dim" if not lines else "")

    def _print(self, line: str) -> None:
        (self.live.console if self.live else console).print(line, markup=False, highlight=False)


def _task_line(result: TaskResult) -> str:
    from kernelwright.report.run import format_duration, format_percent

    if result.verdict != "passed":
        return f"{result.verdict} ({result.reason})" if result.reason else result.verdict
    speedups = ", ".join(f"{s:.2f}x vs {b}" for b, s in result.speedup.items())
    sol = f", {format_percent(result.sol_fraction)} of speed of light" if result.sol_fraction is not None else ""
    return f"passed, {result.best} {speedups}{sol} ({result.candidates} candidates, {format_duration(result.wall_s)})"
