"""Evaluators for a whole machine: one per GPU (or one on the CPU), shared by a search.

Timing is serialized per GPU: each GPU has one Evaluator, and an Evaluator
judges one candidate at a time, so no two timed runs share a device. Several
GPUs judge several candidates at once. Compiling happens ahead, in a pool of
CPU processes (`prebuild`), so a GPU waits for neither NVRTC nor the C++
compiler. Evaluations are awaited from the search's event loop; each runs in a
thread of its own that waits on the evaluator's worker processes. The pool
holds no event-loop state, so one pool serves run after run (a bench keeps its
warm workers from task to task).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kernelwright import environment
from kernelwright.candidate import Candidate
from kernelwright.config import EvalSettings
from kernelwright.evaluate.evaluator import Evaluator
from kernelwright.evaluate.options import EvalOptions
from kernelwright.evaluate.prebuild import Prebuilder
from kernelwright.evaluate.verdict import Timing, Verdict
from kernelwright.task import Task


class EvaluatorPool:
    def __init__(self, settings: EvalSettings) -> None:
        device = settings.device or environment.default_device()
        gpus = chosen_gpus(settings) if device == "cuda" else []
        if len(gpus) > 1:
            options = [dataclasses.replace(settings.options(device), gpu=gpu) for gpu in gpus]
        else:
            options = [dataclasses.replace(settings.options(device), gpu=gpus[0] if settings.gpus else None)]
        self.devices = [f"cuda:{gpu}" for gpu in gpus] or ["cpu"]
        self.key = evaluation_key(device, options[0])
        self._evaluators = [Evaluator(o) for o in options]
        # One thread per evaluator: a thread that starts an evaluation always finds one idle.
        self._threads = ThreadPoolExecutor(len(self._evaluators), thread_name_prefix="kernelwright-eval")
        self._idle: queue.SimpleQueue[Evaluator] = queue.SimpleQueue()
        for evaluator in self._evaluators:
            self._idle.put(evaluator)
        self._prebuilder = Prebuilder(settings.prebuild_workers, _arch(gpus)) if settings.prebuild_workers else None

    async def evaluate(self, task: Task, candidate: Candidate) -> dict[str, Any]:
        """The verdict JSON of `candidate`, from the first evaluator that is free."""
        built = self._prebuilder.submit(candidate.source) if self._prebuilder else None
        if built is not None:
            await asyncio.wrap_future(built)  # its errors are the evaluation's to report
        verdict = await asyncio.get_running_loop().run_in_executor(self._threads, self._on_idle, task, candidate)
        return verdict.to_dict()

    def _on_idle(self, task: Task, candidate: Candidate) -> Verdict:
        evaluator = self._idle.get_nowait()
        try:
            return evaluator.evaluate(task, candidate)
        finally:
            self._idle.put(evaluator)

    def baselines(self, task: Task) -> tuple[dict[str, Timing], dict[str, str]]:
        """The baselines' timings (and errors) on the first evaluator's device."""
        return self._evaluators[0].baselines(task)

    def close(self) -> None:
        if self._prebuilder:
            self._prebuilder.close()
        for evaluator in self._evaluators:
            evaluator.close()
        self._threads.shutdown(wait=False, cancel_futures=True)


def evaluation_key(device: str, options: EvalOptions) -> str:
    """A verdict is reused only on the same device model, software and evaluation settings."""
    settings = dataclasses.asdict(options)
    # Where it ran, how many workers waited, when cached baselines are measured again: not what was judged.
    for per_machine in ("gpu", "spare_workers", "baseline_drift"):
        settings.pop(per_machine)
    blob = json.dumps([environment.current(device).key(), settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chosen_gpus(settings: EvalSettings) -> list[int]:
    """The GPUs the settings evaluate on: those named, else all of this machine's."""
    import torch

    count = torch.cuda.device_count()
    chosen = list(settings.gpus) if settings.gpus else list(range(count))
    missing = [gpu for gpu in chosen if not 0 <= gpu < count]
    if missing:
        raise ValueError(f"GPU(s) {missing} requested, but this machine has {count}")
    return chosen


def _arch(gpus: list[int]) -> str | None:
    if not gpus:
        return None
    import torch

    major, minor = torch.cuda.get_device_capability(gpus[0])
    return f"sm_{major}{minor}"
