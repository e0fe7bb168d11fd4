"""A bench: one optimization run per task of a suite, in order, resumable at any point.

    run_bench(suite, config, store, out) →
        find the unfinished bench of the same command (or start one, recording its task list)
        → for each task: skip it if its run finished (or the task proved broken),
          else optimize it (a run that was cut short continues where it stopped)
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kernelwright import environment
from kernelwright.bench.results import BenchResult, TaskResult, bench_result, task_result
from kernelwright.bench.suites import Suite
from kernelwright.config import Config
from kernelwright.generate import Generator, get_generator
from kernelwright.search.controller import DEFAULT_GENERATOR, optimize
from kernelwright.search.run import Evaluations, Run
from kernelwright.store import BenchRecord, BenchTaskRecord, Store
from kernelwright.task import TaskError

DEFAULT_OUT = Path("kernelwright-bench")
RUNS_FOLDER = "runs"  # each task's best.py and run report, under the bench's folder, by task key


class BenchProgress(Protocol):
    """What a bench tells whoever watches it (the CLI's live view)."""

    def bench_started(self, bench_id: str, resumed: bool, total: int) -> None: ...

    def task_skipped(self, index: int, total: int, result: TaskResult) -> None: ...

    def task_started(self, index: int, total: int, row: BenchTaskRecord) -> None: ...

    def run_started(self, run: Run, resumed: bool) -> None: ...

    def run_progress(self, run: Run) -> None: ...

    def task_finished(self, index: int, total: int, result: TaskResult) -> None: ...


class _Unwatched:
    """No one watches: every event is dropped."""

    def bench_started(self, bench_id: str, resumed: bool, total: int) -> None:
        pass

    def task_skipped(self, index: int, total: int, result: TaskResult) -> None:
        pass

    def task_started(self, index: int, total: int, row: BenchTaskRecord) -> None:
        pass

    def run_started(self, run: Run, resumed: bool) -> None:
        pass

    def run_progress(self, run: Run) -> None:
        pass

    def task_finished(self, index: int, total: int, result: TaskResult) -> None:
        pass


@dataclass
class BenchOutcome:
    result: BenchResult
    resumed: bool
    files: dict[str, Path] = field(default_factory=dict)


def run_bench(suite: Suite, config: Config, store: Store, out_dir: Path | None = None, *,
              generator: Generator | None = None, evaluations: Evaluations | None = None,
              progress: BenchProgress | None = None) -> BenchOutcome:
    """Run (or continue) a bench of `suite`. `generator` defaults to the one the config names (one
    instance serves every task: generators keep nothing between calls), `evaluations` to an
    EvaluatorPool per task."""
    if generator is None:
        generator = get_generator(config.generator or DEFAULT_GENERATOR, config=config, store=store)
    progress = progress or _Unwatched()
    record, resumed = _bench_record(suite, config, store)
    store.update_bench(record.id, status="running")
    out = Path(out_dir) if out_dir else DEFAULT_OUT / record.id
    tasks = {entry.key: entry.task for entry in suite.tasks}  # same bench key: the same task list
    status = "failed"
    try:
        rows = store.bench_tasks(record.id)
        progress.bench_started(record.id, resumed, len(rows))
        for index, row in enumerate(rows):
            if _done(store, row):
                progress.task_skipped(index, len(rows), _result(store, record.id, row.seq))
                continue
            progress.task_started(index, len(rows), row)

            def started(run: Run, resumed_run: bool, row: BenchTaskRecord = row) -> None:
                store.link_bench_task(record.id, row.seq, run.id)
                progress.run_started(run, resumed_run)

            try:
                optimize(tasks[row.task_key], config, store, out / RUNS_FOLDER / row.task_key, resume=row.run_id,
                         generator=generator, evaluations=evaluations, on_start=started,
                         on_progress=progress.run_progress)
            except TaskError as e:  # the task's own fault (its reference cannot run): recorded, the bench goes on
                store.fail_bench_task(record.id, row.seq, str(e))
            progress.task_finished(index, len(rows), _result(store, record.id, row.seq))
            write_outputs(store, record.id, out)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        store.update_bench(record.id, status=status, finished_at=time.time() if status == "finished" else None)
        files = write_outputs(store, record.id, out)
    return BenchOutcome(bench_result(store, record.id), resumed, files)


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
