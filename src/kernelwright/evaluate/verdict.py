"""The verdict: what the evaluator says about one candidate, as data and as JSON.

The JSON form is a contract (DESIGN.md): `status`, `reason`, and for a pass the
times, speedups against eager and torch.compile, the speed-of-light fraction,
the device and the versions. Keys are only ever added, never renamed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    PASSED = "passed"
    STATIC_REJECTED = "static_rejected"  # the syntax tree breaks a rule; nothing ran
    COMPILE_ERROR = "compile_error"  # a kernel did not build
    RUNTIME_ERROR = "runtime_error"  # an exception, a crash, a device fault, out of memory, an output flood
    TIMEOUT = "timeout"  # a step outlasted its limit
    INCORRECT = "incorrect"  # wrong outputs, modified inputs, wrong shapes
    REJECTED = "rejected"  # ran and matched, but cannot be trusted: no custom kernel ran, or faster than light
    UNSUPPORTED = "unsupported"  # sound as far as this machine can tell, but needs a device it lacks


@dataclass(frozen=True)
class Timing:
    median_ms: float
    iqr_ms: float  # interquartile range: the spread that a comparison must beat
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    status: Status
    reason: str
    task: dict[str, Any] = field(default_factory=dict)  # name, id
    candidate: dict[str, Any] = field(default_factory=dict)  # id, backends, kernels
    time: Timing | None = None
    baselines: dict[str, Timing] = field(default_factory=dict)  # "eager", "compile"
    speed_of_light: dict[str, Any] | None = None  # floor_ms, fraction, unit, bound
    custom_kernel_share: float | None = None  # custom kernels' share of device time
    correctness: dict[str, Any] = field(default_factory=dict)  # trials run, worst error, mismatch
    details: dict[str, Any] = field(default_factory=dict)  # rule violations, logs, tracebacks
    flags: list[str] = field(default_factory=list)  # results a person should review
    profile: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per evaluation step

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def speedup(self) -> dict[str, float]:
        """Baseline median over candidate median, per baseline."""
        if self.time is None or self.time.median_ms <= 0:
            return {}
        return {name: t.median_ms / self.time.median_ms for name, t in self.baselines.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason,
            "task": self.task,
            "candidate": self.candidate,
            "time": self.time.to_dict() if self.time else None,
            "baselines": {name: t.to_dict() for name, t in self.baselines.items()},
            "speedup": self.speedup,
            "speed_of_light": self.speed_of_light,
            "custom_kernel_share": self.custom_kernel_share,
            "correctness": self.correctness,
            "flags": self.flags,
            "profile": self.profile,
            "details": self.details,
            "environment": self.environment,
            "seconds": self.seconds,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)
