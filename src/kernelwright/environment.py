"""What this process runs on: the device and the versions every result records.

A timing or a verdict is only comparable with another taken on the same device
with the same software, so every cache key and every verdict carries these.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import asdict, dataclass

import torch

import kernelwright


@dataclass(frozen=True)
class Environment:
    device: str  # "cuda" or "cpu"
    device_name: str  # e.g. "NVIDIA H100 80GB HBM3", or the CPU model
    driver: str | None
    cuda: str | None
    torch: str
    triton: str | None
    python: str
    kernelwright: str
    # What a kernel author sizes grids and tiles by; not part of key() (the device name implies them).
    processors: int | None = None  # streaming multiprocessors on a GPU, logical cores on the CPU
    memory_gib: float | None = None  # the GPU's memory, or the machine's RAM

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """A filename-safe key: results cached under it are valid only for this device and software."""
        parts = [self.device_name, self.driver or "-", self.cuda or "-", self.torch, self.triton or "-"]
        return "_".join(p.replace(" ", "-").replace("/", "-") for p in parts)


def default_device() -> str:
    """The device evaluations run on here: the GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def current(device: str | None = None) -> Environment:
    device = device or default_device()
    return Environment(
        device=device,
        device_name=_device_name(device),
        driver=_driver_version() if device == "cuda" else None,
        cuda=torch.version.cuda,
        torch=torch.__version__,
        triton=_triton_version(),
        python=platform.python_version(),
        kernelwright=kernelwright.__version__,
        **_capacity(device),
    )


def _capacity(device: str) -> dict[str, int | float | None]:
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return {"processors": props.multi_processor_count, "memory_gib": round(props.total_memory / 2**30, 1)}
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    return {"processors": os.cpu_count(), "memory_gib": None if ram is None else round(ram / 2**30, 1)}


def _device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__
