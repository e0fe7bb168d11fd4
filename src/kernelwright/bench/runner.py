"""A bench: one optimization run per task of a suite, resumable at any point.

    run_bench(suite, config, store, out) →
        find the unfinished bench of the same command (or start one, recording its task list)
        → skip each task whose run finished (or that proved broken); the others, in order,
          in one lane (this process, one evaluator pool kept warm from task to task) or in
          several lanes side by side, one per GPU (lanes.py)
        → each task optimized (a run that was cut short continues where it stopped)
        → bench.json and bench.html after every task, and at the end

Each task's run is an ordinary `optimize` run (same settings, same store), so
everything that makes a run safe to interrupt makes a bench safe too, and
`kernelwright show RUN` works on any task of a bench.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kernelwright import environment
from kernelwright.bench.lanes import Lane, lane_settings, run_lanes
from kernelwright.bench.progress import BenchProgress, RunStatus, Unwatched
from kernelwright.bench.results import BenchResult, TaskResult, bench_result, task_result
from kernelwright.bench.suites import Suite
from kernelwright.config import Config
from kernelwright.generate import Generator, get_generator
from kernelwright.search.controller import DEFAULT_GENERATOR, optimize
from kernelwright.search.run import Evaluations, Run
from kernelwright.store import BenchRecord, BenchTaskRecord, Store
from kernelwright.task import Task, TaskError

DEFAULT_OUT = Path("kernelwright-bench")
RUNS_FOLDER = "runs"  # each task's best.py and run report, under the bench's folder, by task key


class RunWatcher(Protocol):
    """Where a task's run reports to (the progress view here, or a lane's event queue)."""

    def run_started(self, seq: int, status: RunStatus, resumed: bool) -> None: ...

    def run_progress(self, seq: int, status: RunStatus) -> None: ...


@dataclass
class BenchOutcome:
    result: BenchResult
    resumed: bool
    files: dict[str, Path] = field(default_factory=dict)


def run_bench(suite: Suite, config: Config, store: Store, out_dir: Path | None = None, *,
              generator: Generator | None = None, evaluations: Evaluations | None = None,
              progress: BenchProgress | None = None, lanes: int | None = None) -> BenchOutcome:
    """Run (or continue) a bench of `suite`.

    `lanes`: how many tasks run side by side; None means one per GPU the evaluation uses (one on the
    CPU). With one lane, `generator` defaults to the one the config names (one instance serves every
    task: generators keep nothing between calls) and `evaluations` to one EvaluatorPool for the whole
    bench. Several lanes each build their own generator (from the config) and evaluators."""
    progress = progress or Unwatched()
    settings = lane_settings(config, lanes)
    if len(settings) > 1 and (evaluations is not None or generator is not None):
        raise ValueError("each lane of a bench makes its own generator and evaluators: pass them for one lane only")
    record, resumed = _bench_record(suite, config, store)
    store.update_bench(record.id, status="running")
    out = Path(out_dir) if out_dir else DEFAULT_OUT / record.id
    tasks = {entry.key: entry.task for entry in suite.tasks}  # same bench key: the same task list
    status = "failed"
    try:
        rows = store.bench_tasks(record.id)
        progress.bench_started(record.id, resumed, len(rows))
        pending = []
        for row in rows:
            if _done(store, row):
                progress.task_skipped(row.seq, len(rows), task_result(store, row))
            else:
                pending.append(row)

        def finished(seq: int) -> None:
            progress.task_finished(seq, len(rows), _result(store, record.id, seq))
            write_outputs(store, record.id, out)

        if len(settings) == 1:
            _run_here(record.id, pending, len(rows), tasks, config, store, out, generator, evaluations, progress,
                      finished)
        else:
            lanes_ = [Lane(n, record.id, store.path, out, config, s, tasks) for n, s in enumerate(settings)]
            run_lanes(lanes_, pending, len(rows), progress, finished)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.update_bench(record.id, status=status, finished_at=time.time() if status == "finished" else None)
        files = write_outputs(store, record.id, out)
    return BenchOutcome(bench_result(store, record.id), resumed, files)


def run_task(bench_id: str, row: BenchTaskRecord, task: Task, config: Config, store: Store, out: Path,
             generator: Generator, evaluations: Evaluations, watcher: RunWatcher) -> None:
    """Optimize one task of a bench, continuing its run if it has one; a broken task is recorded, not raised."""

    def started(run: Run, resumed: bool) -> None:
        store.link_bench_task(bench_id, row.seq, run.id)
        watcher.run_started(row.seq, RunStatus.of(run), resumed)

    try:
        optimize(task, config, store, out / RUNS_FOLDER / row.task_key, resume=row.run_id, generator=generator,
                 evaluations=evaluations, on_start=started,
                 on_progress=lambda run: watcher.run_progress(row.seq, RunStatus.of(run)))
    except TaskError as e:  # the task's own fault (its reference cannot run): recorded, the bench goes on
        store.fail_bench_task(bench_id, row.seq, str(e))


def _run_here(bench_id: str, pending: list[BenchTaskRecord], total: int, tasks: dict[str, Task], config: Config,
              store: Store, out: Path, generator: Generator | None, evaluations: Evaluations | None,
              progress: BenchProgress, finished: Callable[[int], None]) -> None:
    """One lane, in this process: the tasks in order, sharing one evaluator pool (its workers stay warm)."""
    if not pending:
        return
    if generator is None:
        generator = get_generator(config.generator or DEFAULT_GENERATOR, config=config, store=store)
    own_pool = evaluations is None
    if own_pool:
        from kernelwright.evaluate.pool import EvaluatorPool

        evaluations = EvaluatorPool(config.eval)
    try:
        for row in pending:
            progress.task_started(row.seq, total, row)
            run_task(bench_id, row, tasks[row.task_key], config, store, out, generator, evaluations, progress)
            finished(row.seq)
    finally:
        if own_pool:
            evaluations.close()


def write_outputs(store: Store, bench_id: str, out: Path) -> dict[str, Path]:
    """bench.json and bench.html in `out` (made if missing), from what the store holds now."""
    from kernelwright.report.bench import write_bench_reports

    return write_bench_reports(bench_result(store, bench_id), out)


def _bench_record(suite: Suite, config: Config, store: Store) -> tuple[BenchRecord, bool]:
    """The unfinished bench of this same command, or a new one with its task list."""
    tasks = json.dumps([[entry.key, entry.task.id] for entry in suite.tasks])
    # The same rule as for a run: the same tasks (by content) and every setting but the open-ended limits.
    key = config.run_key(hashlib.sha256(tasks.encode()).hexdigest())
    record = store.find_resumable_bench(key)
    if record is not None:
        return record, True
    record = BenchRecord(id=secrets.token_hex(4), key=key, suite=suite.name, task_filter=suite.task_filter,
                         config=config.to_dict(), environment=environment.current(config.eval.device).to_dict())
    rows = [BenchTaskRecord(record.id, seq, entry.key, entry.task.id, str(entry.task.path),
                            len(entry.task.meta.shape_variants)) for seq, entry in enumerate(suite.tasks)]
    store.create_bench(record, rows)
    return record, False


def _done(store: Store, row: BenchTaskRecord) -> bool:
    return row.error is not None or (row.run_id is not None and store.get_run(row.run_id).status == "finished")


def _result(store: Store, bench_id: str, seq: int) -> TaskResult:
    return task_result(store, store.bench_tasks(bench_id)[seq])
