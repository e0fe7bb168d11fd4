"""One measurement done right: the time of a callable, by the same code for candidates and baselines.

Protocol, per timed call:
1. the next of several input sets (rotating, so no call finds its inputs in
   cache from the call before);
2. the last-level cache flushed by writing a buffer twice its size (L2 on a
   GPU, read from the device; the LLC on a CPU);
3. the call, timed.
Warm-up calls run first so that compilation and autotuning stay out. The
result is the median and interquartile range over enough runs: at least
`min_runs`, then until `budget_s` has passed or `max_runs` were made.

How step 3 times, by device:
- GPU: CUDA events on the current stream around the call, as the device sees
  it: from the end of the flush to the end of the call's work. Calls are
  queued in rounds of ROUND without waiting, as a model's layers are, so the
  host's launch cost is hidden behind the flush and the call before, as long
  as the GPU is the slower of the two; a call whose host side is slower than
  its kernels leaves the GPU idle between the events, and that idle time is
  counted. Each round ends with a device-wide synchronize, so nothing a round
  queued runs into the next. Work on another stream would escape the events:
  the static rules reject every way to make or pick a stream (Python and C/C++
  sources alike), and a time under the speed-of-light floor is rejected.
  (Timing with the host clock around a synchronize, as before, added 40-107 us
  of launch and synchronize latency to every call on an H200: a fifth to a
  third of the suite's 0.1-0.5 ms memory-bound tasks.)
- CPU: the host clock around the call (the call is synchronous).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

_CPU_LLC_FALLBACK = 64 * 1024 * 1024
# GPU calls queued per round before the host waits for them (see the module docstring).
ROUND = 10
# Bumped when the protocol changes: cached baseline times measured by another protocol are not reused.
PROTOCOL = 2


@dataclass(frozen=True)
class TimingResult:
    median_ms: float
    iqr_ms: float
    runs: int
    last_outputs: list[Any]  # the output of the last timed call on each input set, for checking

    def summary(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "runs": self.runs}


def time_calls(fn: Callable[..., Any], input_sets: Sequence[Sequence[Any]], device: str, *,
               warmup_runs: int = 3, min_runs: int = 10, max_runs: int = 100,
               budget_s: float = 2.0) -> TimingResult:
    """Time `fn(*inputs)` over rotating input sets; see the module docstring for the protocol."""
    if not input_sets:
        raise ValueError("time_calls needs at least one input set")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    flush_buffer = _flush_buffer(device)
    # Every set is timed at least once: the outputs of each are checked afterwards.
    min_runs, max_runs = max(min_runs, len(input_sets)), max(max_runs, len(input_sets))

    with torch.no_grad():
        for i in range(warmup_runs):
            fn(*input_sets[i % len(input_sets)])
        sync()
        timed = _time_on_gpu if device == "cuda" else _time_on_host
        times, last_outputs = timed(fn, input_sets, flush_buffer, min_runs, max_runs, budget_s)

    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0], 0, times[0])
    return TimingResult(statistics.median(times), q3 - q1, len(times), last_outputs)


def _runs_left(done: int, min_runs: int, max_runs: int, started: float, budget_s: float) -> int:
    """How many more calls to time: up to min_runs whatever the budget, then while it lasts; never past
    max_runs."""
    if done >= max_runs:
        return 0
    if done < min_runs:
        return min(min_runs, max_runs) - done
    return max_runs - done if time.perf_counter() - started < budget_s else 0


def _time_on_host(fn: Callable[..., Any], input_sets: Sequence[Sequence[Any]], flush_buffer: torch.Tensor,
                  min_runs: int, max_runs: int, budget_s: float) -> tuple[list[float], list[Any]]:
    times: list[float] = []
    last_outputs: list[Any] = [None] * len(input_sets)
    started = time.perf_counter()
    while _runs_left(len(times), min_runs, max_runs, started, budget_s):
        k = len(times) % len(input_sets)
        flush_buffer.zero_()
        t0 = time.perf_counter()
        last_outputs[k] = fn(*input_sets[k])
        times.append((time.perf_counter() - t0) * 1e3)
    return times, last_outputs


def _time_on_gpu(fn: Callable[..., Any], input_sets: Sequence[Sequence[Any]], flush_buffer: torch.Tensor,
                 min_runs: int, max_runs: int, budget_s: float) -> tuple[list[float], list[Any]]:
    times: list[float] = []
    last_outputs: list[Any] = [None] * len(input_sets)
    started = time.perf_counter()
    while left := _runs_left(len(times), min_runs, max_runs, started, budget_s):
        events = []
        for i in range(min(left, ROUND)):
            k = (len(times) + i) % len(input_sets)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            flush_buffer.zero_()
            start.record()
            last_outputs[k] = fn(*input_sets[k])
            end.record()
            events.append((start, end))
        torch.cuda.synchronize()  # device-wide: the round's work is done, on every stream
        times += [start.elapsed_time(end) for start, end in events]
    return times, last_outputs


def _flush_buffer(device: str) -> torch.Tensor:
    """A buffer twice the last-level cache: writing it evicts whatever the last call left there."""
    if device == "cuda":
        size = 2 * torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size
    else:
        size = 2 * _cpu_llc_bytes()
    return torch.empty(size // 4, dtype=torch.int32, device=device)


def _cpu_llc_bytes() -> int:
    # The highest cache level sysfs lists for CPU 0, e.g. "32768K".
    import glob

    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        units = {"K": 1024, "M": 1024 * 1024}
        sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
    return max(sizes, default=_CPU_LLC_FALLBACK)
