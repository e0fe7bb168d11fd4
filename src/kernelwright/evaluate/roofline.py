"""Speed of light: the least time the reference's work can take on this device.

A kernel is judged against two measured ceilings, memory bandwidth and
arithmetic throughput per unit. Its floor is the larger of "bytes that must
move / bandwidth" and "FLOPs / FLOP rate". A time well under that floor means
the kernel skipped work (cached results, wrong shapes, a timing bug), so it is
rejected. The floor must therefore err low: every choice below that is unsure
picks the faster unit or the smaller count, never the other way, because a
floor that is too high rejects honest kernels, the baseline included.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from kernelwright import environment
from kernelwright.paths import cache_dir

# Arithmetic units, ordered by precision high -> low (mantissa bits 23, 10, 10, 7;
# tf32 keeps fp32's range, so a task that admits fp16 also admits tf32).
UNITS = ("fp32", "tf32", "fp16", "bf16")

# A measured time under floor * margin is rejected. The margin exists because the
# ceilings are measured once (by cuBLAS and a copy, not from a datasheet) and a
# hand-written kernel may beat them by a few percent; clocks, boost and
# temperature also move between the ceiling run and the timing run.
IMPOSSIBLE_MARGIN = 0.9

_DTYPE_UNIT = {torch.float32: "fp32", torch.float64: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# aten ops whose arithmetic runs on matrix units (their FLOPs are what the counter counts).
_MATMUL_OPS = {"mm", "addmm", "bmm", "baddbmm", "addbmm", "_scaled_mm", "linear", "matmul"}


# -- work -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Work:
    """What the reference must do at the least.

    `flops` counts only matmul, convolution and attention (what PyTorch's FLOP
    counter knows); elementwise and reduction ops count 0. For those the byte
    term dominates the floor, which is right: they are memory-bound by an
    order of magnitude, and counting 0 only lowers the floor.
    """
    flops: int
    bytes: int  # every used input and parameter/buffer read once, every output written once
    flops_by_op: dict[str, int]
    reference_units: frozenset[str]  # units the reference's own arithmetic uses on this device
    written: int = 0  # of `bytes`, those written (the outputs); the rest are read


def _new_precision(obj: Any) -> str | None:
    try:
        return getattr(obj, "fp32_precision", None)
    except Exception:  # noqa: BLE001
        return None


def _tf32_flag(new: Any, legacy: Callable[[], bool]) -> bool:
    """Whether float32 runs on TF32 tensor cores. Torch >= 2.9 has `fp32_precision`
    ("tf32"/"ieee"/"none" = inherit); reading the legacy flag raises once the two APIs
    were mixed, so the new one is read first and "none" falls back to the legacy one."""
    p = _new_precision(new)
    if p in ("tf32", "ieee"):
        return p == "tf32"
    try:
        return bool(legacy())
    except RuntimeError:
        return False


def matmul_tf32() -> bool:
    """float32 matmuls on CUDA use TF32 (default off: precision "highest")."""
    return _tf32_flag(torch.backends.cuda.matmul, lambda: torch.backends.cuda.matmul.allow_tf32)


def conv_tf32() -> bool:
    """float32 convolutions on CUDA use TF32 (default ON: cudnn.allow_tf32)."""
    return _tf32_flag(getattr(torch.backends.cudnn, "conv", None), lambda: torch.backends.cudnn.allow_tf32)


def op_unit(kind: str, dtype: torch.dtype, device_type: str) -> str | None:
    """The unit a matmul-class op (`kind` "matmul", "conv" or "attention") computes in."""
    unit = _DTYPE_UNIT.get(dtype)
    if unit != "fp32" or dtype == torch.float64:
        return unit
    if device_type == "cuda":
        if kind == "attention":  # fused fp32 attention kernels use tensor cores internally: err fast
            return "tf32"
        return "tf32" if (conv_tf32() if kind == "conv" else matmul_tf32()) else "fp32"
    # oneDNN on the CPU can be told to run fp32 in bf16 or tf32 (torch >= 2.9).
    mkl = getattr(torch.backends, "mkldnn", None)
    p = _new_precision(getattr(mkl, "conv" if kind == "conv" else "matmul", None))
    return p if p in ("bf16", "tf32") else "fp32"


def _op_kind(name: str) -> str | None:
    if "conv" in name and "convert" not in name:
        return "conv"
    if "attention" in name:
        return "attention"
    return "matmul" if name in _MATMUL_OPS else None


class _Watch(TorchDispatchMode):
    """Records the units of matmul-class ops and the storages any op reads."""

    def __init__(self, device_type: str) -> None:
        super().__init__()
        self.device_type = device_type
        self.units: set[str] = set()
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        for t in tensors:
            self.storages.add(_storage(t))
        kind = _op_kind(func.overloadpacket.__name__)
        floating = [t for t in tensors if t.is_floating_point()]
        if kind and floating:
            dev = floating[0].device.type if floating[0].device.type != "meta" else self.device_type
            unit = op_unit(kind, floating[0].dtype, dev)
            if unit:
                self.units.add(unit)
        return func(*args, **kwargs)


def _storage(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except Exception:  # noqa: BLE001
        return id(t)


def _nbytes(tensors: Sequence[torch.Tensor]) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def count_work(model: torch.nn.Module, inputs: Sequence[Any], device: str) -> Work:
    """Run one forward (no grad) on the real inputs, counting FLOPs, bytes and units.

    The model and inputs must already be on `device`. Inputs and parameters no op
    touches (unused layers, ignored arguments) are not counted: no kernel must read them.
    """
    device_type = torch.device(device).type
    counter = FlopCounterMode(display=False)
    watch = _Watch(device_type)
    with torch.no_grad(), counter, watch:
        out = model(*inputs)
    outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    read = [t for t in tree_flatten(list(inputs))[0] if isinstance(t, torch.Tensor)]
    read += list(model.parameters()) + list(model.buffers())
    read = [t for t in read if _storage(t) in watch.storages]
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    units = set(watch.units) or {_DTYPE_UNIT.get(t.dtype, "fp32") for t in outputs} or {"fp32"}
    return Work(flops=int(counter.get_total_flops()), bytes=_nbytes(read) + _nbytes(outputs),
                flops_by_op=by_op, reference_units=frozenset(units), written=_nbytes(outputs))


# -- ceilings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ceilings:
    """Measured (not datasheet) limits of one device: what cuBLAS, a copy and reductions reach."""
    device_name: str
    bandwidth: float  # bytes/s of a large device-to-device copy, bytes read + written
    flops: dict[str, float]  # unit -> FLOP/s of a large matmul in that unit
    measured_at: str  # ISO date
    # Bytes/s of reads alone (a large sum or max): HBM reads faster than it mixes reads with writes, so
    # a kernel that mostly reads can beat the copy. 0: not measured (the floor then uses the copy's).
    read_bandwidth: float = 0.0

    def memory_seconds(self, read: int, written: int) -> float:
        """The least time to read `read` bytes and write `written`. Split: reads at the read bandwidth, and
        each written byte at what a copy's byte pair costs less its read (a copy-shaped task gets exactly
        the copy's floor, a reduction the read's). The floor errs fast, so it is the lesser of that and
        all bytes at the copy's rate (which is faster for writes alone)."""
        as_copy = (read + written) / self.bandwidth
        if self.read_bandwidth <= 0:
            return as_copy
        reads = max(self.read_bandwidth, self.bandwidth)  # reads alone never go slower than a copy's mix
        split = read / reads + written * (2 / self.bandwidth - 1 / reads)
        return min(as_copy, split)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Ceilings:
        # Every field is required: a cache file from before the read bandwidth was measured is measured again.
        return cls(device_name=str(d["device_name"]), bandwidth=float(d["bandwidth"]),
                   flops={str(k): float(v) for k, v in d["flops"].items()}, measured_at=str(d["measured_at"]),
                   read_bandwidth=float(d["read_bandwidth"]))


def _best_seconds(fn: Callable[[], Any], dev: torch.device, repeats: int, warmup: int = 3) -> float:
    """The fastest of `repeats` runs: a ceiling is the best the device can do, and a busy
    moment must not lower it (a lower ceiling means a higher floor, which could reject an
    honest kernel as faster than light)."""
    for _ in range(warmup):
        fn()
    samples = []
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    return min(samples)


def _matmul_rate(n: int, dtype: torch.dtype, dev: torch.device, repeats: int, warmup: int = 3) -> float:
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    return 2 * n**3 / _best_seconds(lambda: a @ b, dev, repeats, warmup)


class _Tf32:
    """Sets float32 matmul TF32 on or off for a block and restores the caller's setting."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        m = torch.backends.cuda.matmul
        self.new = _new_precision(m) is not None
        self.saved = m.fp32_precision if self.new else m.allow_tf32
        if self.new:
            m.fp32_precision = "tf32" if self.on else "ieee"
        else:
            m.allow_tf32 = self.on

    def __exit__(self, *exc: Any) -> None:
        if self.new:
            torch.backends.cuda.matmul.fp32_precision = self.saved
        else:
            torch.backends.cuda.matmul.allow_tf32 = self.saved


def measure_ceilings(device: str, *, copy_bytes: int | None = None, matmul_size: int | None = None,
                     repeats: int | None = None) -> Ceilings:
    """Measure bandwidth and per-unit FLOP rates (a few seconds on a GPU).

    GPU: a 1 GiB copy, a sum and a max over 1 GiB and 8192^3 matmuls (fp32 with TF32 off, tf32, fp16,
    bf16), CUDA events, the fastest of 20 after warm-up. CPU: a 256 MiB copy, sum and max and a
    2048^3 fp32 matmul.
    """
    dev = torch.device(device)
    gpu = dev.type == "cuda"
    copy_bytes = copy_bytes or (1 << 30 if gpu else 256 << 20)
    n = matmul_size or (8192 if gpu else 2048)
    repeats = repeats or (20 if gpu else 10)
    src = torch.ones(copy_bytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    copy = 2 * copy_bytes / _best_seconds(lambda: dst.copy_(src), dev, repeats)
    # Reads alone: the faster of a float sum and a max (on H200s they read at 4.02-4.37 TB/s against copies
    # at 4.15-4.22; our reductions reached about 4.4, which the floor's margin admits).
    words = src.view(torch.float32)
    read = copy_bytes / min(_best_seconds(lambda: words.sum(), dev, repeats),
                            _best_seconds(lambda: words.amax(), dev, repeats))
    del src, dst, words
    flops: dict[str, float] = {}
    if gpu:
        with torch.cuda.device(dev):
            with _Tf32(False):
                flops["fp32"] = _matmul_rate(n, torch.float32, dev, repeats)
            with _Tf32(True):
                flops["tf32"] = _matmul_rate(n, torch.float32, dev, repeats)
            flops["fp16"] = _matmul_rate(n, torch.float16, dev, repeats)
            flops["bf16"] = _matmul_rate(n, torch.bfloat16, dev, repeats)
        name = torch.cuda.get_device_name(dev)
    else:
        # fp32 only: half precision on most CPUs is emulated (hundreds of times slower,
        # minutes to measure) and could never be the fastest unit anyway.
        flops["fp32"] = _matmul_rate(n, torch.float32, dev, repeats)
        name = environment.current("cpu").device_name
    return Ceilings(device_name=name, bandwidth=copy, flops=flops, measured_at=date.today().isoformat(),
                    read_bandwidth=read)


def ceilings(device: str, refresh: bool = False) -> Ceilings:
    """The device's ceilings, measured once per device and software versions, then read from the cache."""
    path = cache_dir("ceilings") / f"{environment.current(torch.device(device).type).key()}.json"
    if not refresh and path.exists():
        try:
            return Ceilings.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            pass  # a corrupt cache file is measured again
    ceil = measure_ceilings(device)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(ceil.to_dict(), indent=1))
    tmp.replace(path)
    return ceil


# -- the floor --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Floor:
    seconds: float  # max(compute_seconds, memory_seconds)
    unit: str  # the arithmetic unit of the compute term
    bound: str  # "memory" or "compute": the larger term
    compute_seconds: float
    memory_seconds: float

    def fraction(self, measured_seconds: float) -> float:
        """floor / measured: 1.0 is at the speed of light."""
        return self.seconds / measured_seconds if measured_seconds > 0 else float("inf")


def admitted_units(precision: str) -> frozenset[str]:
    """The units a task's tolerance admits, `precision` being the lowest arithmetic it allows."""
    if precision not in UNITS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {UNITS}")
    return frozenset(UNITS[: UNITS.index(precision) + 1])


def speed_of_light(work: Work, ceil: Ceilings, precision: str) -> Floor:
    """The floor, computing at the fastest measured unit that the reference uses or the
    tolerance admits (the reference may run fp32 convs on TF32: its floor must too)."""
    candidates = (set(work.reference_units) | admitted_units(precision)) & {u for u, r in ceil.flops.items() if r > 0}
    unit = max(candidates, key=lambda u: ceil.flops[u]) if candidates else "fp32"
    if work.flops == 0:
        compute = 0.0
    elif unit not in ceil.flops:
        raise ValueError(f"ceilings for {ceil.device_name} have no FLOP rate for {unit}")
    else:
        compute = work.flops / ceil.flops[unit]
    memory = ceil.memory_seconds(work.bytes - work.written, work.written)
    return Floor(seconds=max(compute, memory), unit=unit, bound="compute" if compute > memory else "memory",
                 compute_seconds=compute, memory_seconds=memory)


def is_impossible(floor: Floor, measured_seconds: float) -> bool:
    """True when a time is under the floor by more than the measurement margin."""
    return measured_seconds < floor.seconds * IMPOSSIBLE_MARGIN
