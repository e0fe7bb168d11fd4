"""A record of custom-kernel launches made through kernelwright's own helpers.

The GPU launch check reads the profiler's kernel list instead; this record
serves where no profiler sees the work: C++ functions called through ctypes
and Triton kernels run by the interpreter on the CPU. Each helper calls
`record` once per launch with the host time the launch took (synchronous on
the CPU, so that is the kernel's time).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

_lock = threading.Lock()
_count: dict[str, int] = defaultdict(int)
_seconds: dict[str, float] = defaultdict(float)


@dataclass(frozen=True)
class LaunchTotals:
    count: dict[str, int]
    seconds: dict[str, float]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def record(name: str, seconds: float) -> None:
    with _lock:
        _count[name] += 1
        _seconds[name] += seconds


def reset() -> None:
    with _lock:
        _count.clear()
        _seconds.clear()


def snapshot() -> LaunchTotals:
    with _lock:
        return LaunchTotals(dict(_count), dict(_seconds))
