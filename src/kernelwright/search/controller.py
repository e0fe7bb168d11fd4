"""The controller: one optimization run from start (or resumption) to its answer and report.

    optimize(task, config, store, out) →
        find the unfinished run of the same command (or start one)
        → strategy.search(run)  → answer (never slower) → best.py, report.md/html, run.json

Everything the run learns is in the store the moment it is known, so a
crash, a `kill -9` or Ctrl-C loses at most the evaluations in flight; running
the same command again continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kernelwright import environment
from kernelwright.config import Config, ConfigError, from_dict
from kernelwright.generate import Generator, get_generator
from kernelwright.search import answer as answers
from kernelwright.search import get_strategy
from kernelwright.search.node import Node
from kernelwright.search.run import Evaluations, Run
from kernelwright.store import RunRecord, Store
from kernelwright.task import Task

DEFAULT_OUT = Path("kernelwright-runs")
DEFAULT_GENERATOR = "expert"  # needs no network: kernelwright does its main job on a fresh install


class RunBusyError(Exception):
    """The run is being continued by another live process."""


@dataclass
class Outcome:
    record: RunRecord
    answer: answers.Answer | None
    files: dict[str, Path] = field(default_factory=dict)
    resumed: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # verdict statuses, duplicates, generator errors
    best: Node | None = None


def optimize(task: Task, config: Config, store: Store, out_dir: Path | None = None, *, resume: str | None = None,
             generator: Generator | None = None, evaluations: Evaluations | None = None, on_start: Callable[[Run, bool], None] | None = None,
             on_progress: Callable[[Run], None] | None = None) -> Outcome:
    """Run (or continue) the optimization of `task`. `generator` defaults to the one the config names,
    `evaluations` to an EvaluatorPool of this machine."""
    if generator is None:
        generator = get_generator(config.generator or DEFAULT_GENERATOR, config=config, store=store)
    strategy = get_strategy(config.strategy)
    params = from_dict(strategy.Params, config.strategy_params.get(config.strategy, {}),
                       f"strategies.{config.strategy}")
    record, resumed = _run_record(task, config, store, resume)
    store.update_run(record.id, status="running", pid=os.getpid(), host=socket.gethostname(), stop_reason=None)

    own_pool = evaluations is None
    if own_pool:
        from kernelwright.evaluate.pool import EvaluatorPool

        evaluations = EvaluatorPool(config.eval)
    run = Run(record, task, generator, evaluations, store, config, on_progress)
    out = Path(out_dir) if out_dir else DEFAULT_OUT / record.id
    status = "failed"
    try:
        if on_start:
            on_start(run, resumed)
        strategy.search(run, params)
        run.finish("the strategy finished")
        status = "finished"
    except KeyboardInterrupt:
        status, run.stop_reason = "interrupted", "interrupted (Ctrl-C); run the same command to continue"
        raise
    except BaseException as e:
        run.stop_reason = f"error: {type(e).__name__}: {e}"
        raise
    finally:
        run.close()
        # Baselines are measured for the answer only when the run ended on its own (no new GPU work after Ctrl-C).
        pool_baselines = _baselines(evaluations, task) if status == "finished" and run.best is None else {}
        if own_pool:
            evaluations.close()
        answer = answers.choose(run.best, pool_baselines)
        store.update_run(record.id, status=status, stop_reason=run.stop_reason, answer=dataclasses.asdict(answer),
                         finished_at=time.time() if status == "finished" else None, pid=None)
        files = write_outputs(store, record.id, task, run, answer, out)
    return Outcome(store.get_run(record.id), answer, files, resumed, dict(run.counts), run.best)


def write_outputs(store: Store, run_id: str, task: Task, run: Run, answer: answers.Answer,
                  out: Path) -> dict[str, Path]:
    """best.py, the reports and run.json in `out` (made if missing)."""
    from kernelwright.report.build import run_report
    from kernelwright.report.run import write_reports

    out.mkdir(parents=True, exist_ok=True)
    best_path = out / "best.py"
    best_path.write_text(answers.source(answer, task, run.best))
    report = run_report(store, run_id)
    files = {"best": best_path, **write_reports(report, out)}
    summary = {"run": run_id, "status": store.get_run(run_id).status, "stop_reason": run.stop_reason,
               "answer": dataclasses.asdict(answer), "candidates": len(run.nodes), "counts": dict(run.counts),
               "best": run.best.summary() if run.best else None,
               "costs": dataclasses.asdict(report.costs) if report.costs else None}
    (out / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    files["json"] = out / "run.json"
    return files


def _run_record(task: Task, config: Config, store: Store, resume: str | None) -> tuple[RunRecord, bool]:
    """The run to continue (named, or the unfinished one of this same command), or a new one."""
    key = config.run_key(task.id)
    if resume:
        record = store.get_run(resume)
        if record.task_id != task.id:
            raise ConfigError(f"run {record.id} optimizes {record.task_path} ({record.task_id}), "
                              f"not {task.path} ({task.id})")
        if record.key != key:
            raise ConfigError(f"run {record.id} was started with other settings; resume it with the same "
                              f"flags and config (see `kernelwright show {record.id}`)")
    else:
        record = store.find_resumable(key)
    if record is not None:
        _check_not_busy(record)
        return record, True
    record = RunRecord(id=secrets.token_hex(4), key=key, task_id=task.id, task_name=task.name,
                       task_path=str(task.path), strategy=config.strategy,
                       generator=config.generator or DEFAULT_GENERATOR,
                       seed=config.seed, config=config.to_dict(),
                       environment=environment.current(config.eval.device).to_dict())
    store.create_run(record)
    return record, False


def _check_not_busy(record: RunRecord) -> None:
    if record.status != "running" or record.pid is None or record.host != socket.gethostname():
        return
    if record.pid == os.getpid():
        return
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return  # the process that ran it is gone (killed): continue
    except PermissionError:
        pass
    raise RunBusyError(f"run {record.id} is being run by process {record.pid} on this machine")


def _baselines(evaluations: Evaluations, task: Task) -> dict[str, float]:
    """Baseline medians when no candidate passed (so none carried them); {} when they cannot be timed."""
    measure = getattr(evaluations, "baselines", None)
    if measure is None:
        return {}
    try:
        timings, _errors = measure(task)
    except Exception:  # noqa: BLE001  (the answer then says nothing was measured; the run's data stands)
        return {}
    return {name: t.median_ms for name, t in timings.items()}
