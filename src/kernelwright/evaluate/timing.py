"""One measurement done right: the time of a callable, by the same code for candidates and baselines.

Protocol, per timed call:
1. the next of several input sets (rotating, so no call finds its inputs in
   cache from the call before);
2. the last-level cache flushed by writing a buffer twice its size (L2 on a
   GPU, read from the device; the LLC on a CPU);
3. a device-wide synchronize, then the host clock, the call, a device-wide
   synchronize, the host clock. Device-wide (not one stream's events), so
   work that a kernel hides on another stream is counted.
Warm-up calls run first so that compilation and autotuning stay out. The
result is the median and interquartile range over enough runs: at least
`min_runs`, then until `budget_s` has passed or `max_runs` were made.

The synchronize adds a few microseconds to each call; it adds the same to
candidates and baselines, and tasks are sized in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

_CPU_LLC_FALLBACK = 64 * 1024 * 1024


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

        times: list[float] = []
        last_outputs: list[Any] = [None] * len(input_sets)
        started = time.perf_counter()
        while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - started < budget_s):
            k = len(times) % len(input_sets)
            flush_buffer.zero_()
            sync()
            t0 = time.perf_counter()
            out = fn(*input_sets[k])
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
            last_outputs[k] = out

    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0], 0, times[0])
    return TimingResult(statistics.median(times), q3 - q1, len(times), last_outputs)


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
