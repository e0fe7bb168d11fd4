"""The `kernelwright` command line.

Exit codes: 0 success (for `eval`: the candidate passed); 1 the candidate did
not pass; 2 bad input (a missing or malformed task or candidate file), with
one line on stderr that says what and where.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from kernelwright.candidate import CandidateError, load_candidate
from kernelwright.task import TaskError, load_task, load_tasks

app = typer.Typer(
    help="Writes, verifies and times GPU and CPU kernels against a PyTorch reference.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

EXIT_NOT_PASSED = 1
EXIT_BAD_INPUT = 2


@app.command("eval")
def eval_command(
    task_path: Path = typer.Argument(..., metavar="TASK.py", help="KernelBench-format task: Model, get_inputs, get_init_inputs."),
    candidate_path: Path = typer.Argument(..., metavar="CANDIDATE.py", help="Python file defining ModelNew."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON (the stable contract)."),
    device: Optional[str] = typer.Option(None, help="cuda or cpu (default: the GPU when there is one)."),
    interpret: bool = typer.Option(False, "--interpret", help="Without a GPU, run Triton kernels in Triton's interpreter (slow; times are not kernel speed)."),
    profile: bool = typer.Option(False, "--profile", help="Add Nsight Compute metrics when ncu is present."),
    seeds: int = typer.Option(5, min=1, help="Correctness trials per input distribution (fresh seed each)."),
    no_compile_baseline: bool = typer.Option(False, "--no-compile-baseline", help="Time eager PyTorch only, not torch.compile."),
    allow_op: list[str] = typer.Option([], "--allow-op", help="PyTorch op the candidate may call (repeatable), e.g. conv2d."),
    timeout: float = typer.Option(120.0, help="Seconds allowed for each step after compilation."),
    compile_timeout: float = typer.Option(300.0, help="Seconds allowed for compiling (importing) the candidate."),
) -> None:
    """Evaluate one candidate against one task and print its verdict."""
    from kernelwright.evaluate.evaluator import Evaluator
    from kernelwright.evaluate.options import EvalOptions

    if device not in (None, "cuda", "cpu"):
        _bad_input(f"--device must be cuda or cpu, got {device!r}")
    task = _or_exit(lambda: load_task(task_path))
    candidate = _or_exit(lambda: load_candidate(candidate_path))
    options = EvalOptions(
        device=device, interpret_triton=interpret, profile=profile, seeds=seeds,
        baselines=("eager",) if no_compile_baseline else ("eager", "compile"), allow_ops=tuple(allow_op),
        step_timeout=timeout, compile_timeout=compile_timeout,
    )
    with Evaluator(options) as evaluator:
        if not as_json:
            errors.print(f"[dim]evaluating {candidate_path} against {task_path} ...[/dim]")
        verdict = _or_exit(lambda: evaluator.evaluate(task, candidate))
    if as_json:
        print(verdict.to_json())
    else:
        _print_verdict(verdict)
    raise typer.Exit(0 if verdict.passed else EXIT_NOT_PASSED)


@app.command()
def doctor() -> None:
    """Say which devices, backends, compilers and profilers are usable here, and why not."""
    from kernelwright import doctor as diagnostics

    diagnostics.render(diagnostics.diagnose(), console)


@app.command()
def tasks(path: Path = typer.Argument(..., help="A task file or a folder of them.")) -> None:
    """List tasks with their ids and metadata."""
    found = _or_exit(lambda: load_tasks(path))
    table = Table(Column("task", no_wrap=True, min_width=max(len(t.name) for t in found)),
                  Column("id", no_wrap=True, min_width=16), "variants", "distributions", "dtype", "precision",
                  "allowed ops")
    for task in found:
        meta = task.meta
        table.add_row(task.name, task.id, str(1 + len(meta.shape_variants)),
                      "pinned" if meta.pinned_inputs else str(1 + len(meta.distributions)),
                      meta.dtype or "as given", meta.precision or "from dtype", ", ".join(meta.allow_ops) or "-")
    console.print(table)


def _print_verdict(verdict) -> None:  # noqa: ANN001  (a Verdict; imported lazily)
    style = "green" if verdict.passed else "red"
    # Reasons quote candidate code and error messages: escaped, so "[x]" is text, not markup.
    console.print(f"[bold {style}]{verdict.status.value}[/]: {escape(verdict.reason)}")
    for violation in verdict.details.get("violations", [])[1:]:
        console.print(escape(f"  line {violation['line']} [{violation['rule']}] {violation['message']}"))
    if verdict.time:
        table = Table("", "median ms", "IQR ms", "runs", "speedup")
        table.add_row("candidate", f"{verdict.time.median_ms:.4g}", f"{verdict.time.iqr_ms:.3g}", str(verdict.time.runs), "")
        for name, t in verdict.baselines.items():
            table.add_row(name, f"{t.median_ms:.4g}", f"{t.iqr_ms:.3g}", str(t.runs), f"{verdict.speedup[name]:.2f}x")
        console.print(table)
    if verdict.speed_of_light:
        sol = verdict.speed_of_light
        console.print(f"speed of light: {sol['floor_ms']:.4g} ms ({sol['bound']}-bound, {sol['unit']}); "
                      f"candidate at {100 * sol['fraction']:.1f}%")
    if verdict.custom_kernel_share is not None:
        console.print(f"custom kernels' share of device time: {100 * verdict.custom_kernel_share:.1f}%")
    for flag in verdict.flags:
        console.print(f"[yellow]flag[/]: {escape(flag)}")
    if verdict.details.get("traceback") and not verdict.passed:
        console.print(f"[dim]{escape(verdict.details['traceback'].strip().splitlines()[-1])}[/dim]")


def _or_exit(load):  # noqa: ANN001, ANN202
    """Run a loader; bad input becomes one line on stderr and exit code 2."""
    try:
        return load()
    except (TaskError, CandidateError) as e:
        _bad_input(str(e))


def _bad_input(message: str) -> None:
    # soft_wrap: one line whatever the terminal's width (or 80 columns when stderr is not a terminal).
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


from kernelwright import cli_bench, cli_export, cli_runs  # noqa: E402, F401  (register their commands on the app)


def main() -> None:
    app(prog_name="kernelwright")

