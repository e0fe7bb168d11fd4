"""Lanes: a bench's tasks side by side, one task per lane at a time, each lane on its own GPUs.

A task's fixed costs (starting its reference, timing eager and torch.compile,
the first compiles) keep one GPU mostly idle, so on a machine with several
GPUs a bench runs several tasks at once rather than spreading one task's
candidates. Each lane is a spawned process with its own store connection,
generator and evaluator pool (pinned to its GPUs); the lanes take the next
unfinished task from a shared queue and report back through an event queue,
from which this process drives the progress view and writes the reports.

    run_lanes → spawn lanes → [lane: next task → optimize → events] → until every lane exits

Ctrl-C reaches every lane (the terminal signals the whole process group; the
parent forwards it too, and a lane acts on the first only), each lane records
its run as interrupted, and the same command continues them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelwright.bench.progress import BenchProgress, RunStatus
from kernelwright.config import Config, EvalSettings
from kernelwright.store import BenchTaskRecord
from kernelwright.task import Task

EVENT_WAIT_S = 0.5  # how often the parent looks up from the event queue to check that the lanes live
INTERRUPT_GRACE_S = 60  # how long interrupted lanes get to record their runs before they are killed


@dataclass
class Lane:
    """What one lane process needs: everything picklable."""

    number: int
    bench_id: str
    db: Path
    out: Path
    config: Config  # the bench's own (the run keys must not depend on the lane)
    eval_settings: EvalSettings  # the config's, pinned to this lane's GPUs
    tasks: dict[str, Task]  # by task key


def lane_settings(config: Config, lanes: int | None) -> list[EvalSettings]:
    """The evaluation settings of each lane. On the GPU, the chosen GPUs (all by default) are dealt round-robin,
    one lane per GPU unless `lanes` says fewer; on the CPU there is one lane unless `lanes` asks for more."""
    from kernelwright import environment

    device = config.eval.device or environment.default_device()
    if device != "cuda":
        return [config.eval] * (lanes or 1)
    from kernelwright.evaluate.pool import chosen_gpus

    gpus = chosen_gpus(config.eval)
    count = min(lanes or len(gpus), len(gpus))
    return [dataclasses.replace(config.eval, gpus=tuple(gpus[i::count])) for i in range(count)]


def run_lanes(lanes: list[Lane], pending: list[BenchTaskRecord], total: int, progress: BenchProgress,
              finished: Callable[[int], None]) -> None:
    """Run the pending tasks in the lanes; `finished(seq)` after each task. Raises KeyboardInterrupt once every
    lane has recorded its interruption."""
    context = multiprocessing.get_context("spawn")
    todo: Any = context.Queue()
    events: Any = context.Queue()
    for row in pending:
        todo.put(row.seq)
    for _ in lanes:
        todo.put(None)  # one stop sign per lane
    processes = [context.Process(target=lane_main, args=(lane, todo, events), name=f"kernelwright-lane-{lane.number}")
                 for lane in lanes]
    for process in processes:
        process.start()
    rows = {row.seq: row for row in pending}
    try:
        _follow(processes, events, rows, total, progress, finished)
    except KeyboardInterrupt:
        alive = [p for p in processes if p.is_alive()]
        progress.stopping(len(alive), INTERRUPT_GRACE_S)
        for process in alive:
            if process.pid:
                os.kill(process.pid, signal.SIGINT)
        # Events are still read while the lanes stop: a process exits only once what it queued is in the pipe.
        start = time.monotonic()
        stopped = {p.name: None for p in alive}
        while any(p.is_alive() for p in alive) and time.monotonic() < start + INTERRUPT_GRACE_S:
            with contextlib.suppress(queue.Empty):
                events.get(timeout=EVENT_WAIT_S)
            for process in alive:
                if not process.is_alive() and stopped[process.name] is None:
                    stopped[process.name] = time.monotonic() - start
        for process in alive:
            killed = process.is_alive()
            if killed:
                process.kill()
            process.join()
            seconds = stopped[process.name]
            progress.lane_stopped(int(process.name.rsplit("-", 1)[1]),
                                  time.monotonic() - start if seconds is None else seconds, killed)
        raise


def _follow(processes: list[Any], events: Any, rows: dict[int, BenchTaskRecord], total: int,
            progress: BenchProgress, finished: Callable[[int], None]) -> None:
    """Turn the lanes' events into progress until every lane has exited; a lane's crash is re-raised here."""
    running = {p.name for p in processes}
    crash: str | None = None
    while running:
        try:
            kind, lane, *data = events.get(timeout=EVENT_WAIT_S)
        except queue.Empty:
            for process in processes:  # a lane killed from outside sends no "exit"
                if process.name in running and not process.is_alive():
                    running.discard(process.name)
                    crash = crash or f"{process.name} died (exit code {process.exitcode})"
            continue
        if kind == "task_started":
            progress.task_started(data[0], total, rows[data[0]])
        elif kind == "run_started":
            progress.run_started(data[0], data[1], data[2])
        elif kind == "run_progress":
            progress.run_progress(data[0], data[1])
        elif kind == "task_finished":
            finished(data[0])
        elif kind == "crashed":
            crash = crash or f"kernelwright-lane-{lane} failed:\n{data[0]}"
        elif kind == "exit":
            running.discard(f"kernelwright-lane-{lane}")
    for process in processes:  # its work is recorded: a lane that does not end (a child it waits on) is killed
        process.join(INTERRUPT_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()
    if crash:
        raise RuntimeError(crash)


def lane_main(lane: Lane, todo: Any, events: Any) -> None:
    """The lane process: take tasks until the stop sign, optimizing each as the sequential bench does."""
    _interrupt_once()
    from kernelwright.bench.runner import run_task
    from kernelwright.evaluate.pool import EvaluatorPool
    from kernelwright.generate import get_generator
    from kernelwright.search.controller import DEFAULT_GENERATOR
    from kernelwright.store import Store

    store = Store(lane.db)
    pool = generator = None
    try:
        # Built here, not sent: an LLM generator records its calls through this lane's own store connection.
        generator = get_generator(lane.config.generator or DEFAULT_GENERATOR, config=lane.config, store=store)
        pool = EvaluatorPool(lane.eval_settings)
        watcher = _Forward(lane.number, events)
        while (seq := todo.get()) is not None:
            row = store.bench_tasks(lane.bench_id)[seq]
            events.put(("task_started", lane.number, seq))
            run_task(lane.bench_id, row, lane.tasks[row.task_key], lane.config, store, lane.out, generator, pool,
                     watcher)
            events.put(("task_finished", lane.number, seq))
    except KeyboardInterrupt:
        pass  # the run recorded itself as interrupted; the parent knows why
    except BaseException:  # noqa: BLE001  (reported to the parent, which stops the bench with it)
        events.put(("crashed", lane.number, traceback.format_exc()))
    finally:
        # Everything that holds processes is closed here: a multiprocessing child's exit waits for its
        # children first, before the exit hooks of executors (an expert's spare analysis process) stop them.
        if pool is not None:
            pool.close()
        if (close := getattr(generator, "close", None)) is not None:
            close()
        store.close()
        events.put(("exit", lane.number))


class _Forward:
    """A lane's progress, sent to the parent as events."""

    def __init__(self, lane: int, events: Any) -> None:
        self.lane, self.events = lane, events

    def run_started(self, seq: int, status: RunStatus, resumed: bool) -> None:
        self.events.put(("run_started", self.lane, seq, status, resumed))

    def run_progress(self, seq: int, status: RunStatus) -> None:
        self.events.put(("run_progress", self.lane, seq, status))


def _interrupt_once() -> None:
    """Ctrl-C raises KeyboardInterrupt once; a second SIGINT (the parent forwarding the same Ctrl-C) is ignored,
    so it cannot cut short the run's recording of the first."""

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
