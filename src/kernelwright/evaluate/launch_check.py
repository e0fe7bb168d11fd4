"""Did a custom kernel really run, and what share of the device time was it?

On a GPU the profiler lists every kernel the call launched, whoever launched
it (PyTorch, Triton's launcher, cuLaunchKernel through NVRTC, a load_inline
extension); a kernel is the candidate's when its name contains one of the
kernel names that the static check found in the candidate's source. On the
CPU no profiler sees a ctypes call, so kernelwright's own helpers record
their launches (`kernelwright.backends.launches`) and the share is their time
over the call's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from kernelwright.backends import launches

_MIN_NAME = 3  # shorter kernel names would match PyTorch's by accident


def measure(fn: Callable[..., Any], args: Sequence[Any], device: str, kernel_names: Sequence[str]) -> dict[str, Any]:
    """Run `fn(*args)` once under observation; return custom and total time, share, and the kernels seen."""
    with torch.no_grad():
        return _measure_gpu(fn, args, kernel_names) if device == "cuda" else _measure_cpu(fn, args)


def _measure_gpu(fn: Callable[..., Any], args: Sequence[Any], kernel_names: Sequence[str]) -> dict[str, Any]:
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(*args)
        torch.cuda.synchronize()
    names = [n for n in kernel_names if len(n) >= _MIN_NAME]
    kernels = []
    for event in prof.events():
        if event.device_type != DeviceType.CUDA:
            continue
        ms = event.time_range.elapsed_us() / 1e3
        kernels.append({"name": event.name[:200], "ms": ms, "custom": any(n in event.name for n in names)})
    return _summary(kernels, total_ms=sum(k["ms"] for k in kernels))


def _measure_cpu(fn: Callable[..., Any], args: Sequence[Any]) -> dict[str, Any]:
    launches.reset()
    start = time.perf_counter()
    fn(*args)
    total_ms = (time.perf_counter() - start) * 1e3
    seen = launches.snapshot()
    kernels = [{"name": name, "ms": seen.seconds[name] * 1e3, "custom": True, "launches": count}
               for name, count in seen.count.items()]
    return _summary(kernels, total_ms=total_ms)


def _summary(kernels: list[dict[str, Any]], total_ms: float) -> dict[str, Any]:
    custom = [k for k in kernels if k["custom"]]
    custom_ms = sum(k["ms"] for k in custom)
    kernels.sort(key=lambda k: -k["ms"])
    return {"custom_launches": len(custom), "custom_ms": custom_ms, "total_ms": total_ms,
            "share": custom_ms / total_ms if total_ms > 0 else (1.0 if custom else 0.0),
            "kernels": kernels[:20]}
