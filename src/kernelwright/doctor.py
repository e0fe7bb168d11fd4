"""`kernelwright doctor`: which devices, backends, compilers and profilers work here, and why not.

Every check is quick (subprocesses time out after 10 s) and never raises: a check that
breaks is reported as unusable with the error, so doctor always prints its whole table.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.table import Table

_TIMEOUT_S = 10
_OPENMP_PROBE = "#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


@dataclass(frozen=True)
class Check:
    area: str  # "device", "backend", "compiler", "profiler"
    name: str
    usable: bool
    detail: str  # the version, or why it is not usable and what to do; one line


def diagnose() -> list[Check]:
    """Run every check, in the order the table shows them."""
    checks: list[tuple[str, str, Callable[[], tuple[bool, str]]]] = [
        ("device", "CUDA GPU", _cuda_gpu),
        ("backend", "Triton (GPU)", _triton_gpu),
        ("backend", "Triton (interpreter)", _triton_interpreter),
        ("backend", "CUDA via NVRTC", lambda: _backend_available("kernelwright.backends.cuda")),
        ("backend", "CUDA via load_inline", _load_inline),
        ("backend", "CPU C++", lambda: _backend_available("kernelwright.backends.cpu")),
        ("compiler", "nvcc", _nvcc),
        ("compiler", "g++ with OpenMP", _gxx_openmp),
        ("compiler", "ninja", _ninja),
        ("profiler", "Nsight Compute", _nsight_compute),
    ]
    return [_safe(area, name, check) for area, name, check in checks]


def render(checks: list[Check], console: Console) -> None:
    """A table of the checks, then one line saying which backends can run candidates here."""
    table = Table(title="kernelwright doctor")
    table.add_column("area")
    table.add_column("name")
    table.add_column("", justify="center")
    table.add_column("detail", overflow="fold")
    for check in checks:
        mark = "[green]✓[/green]" if check.usable else "[red]✗[/red]"
        table.add_row(check.area, check.name, mark, check.detail, style=None if check.usable else "dim")
    console.print(table)
    runnable = [c.name for c in checks if c.area == "backend" and c.usable]
    if runnable:
        console.print(f"Candidates can run here with: {', '.join(runnable)}.")
    else:
        console.print("[red]No backend can run candidates here;[/red] see the details above.")


def _safe(area: str, name: str, check: Callable[[], tuple[bool, str]]) -> Check:
    try:
        usable, detail = check()
    except Exception as exc:  # a broken check must not hide the others
        usable, detail = False, f"{type(exc).__name__}: {exc}"
    return Check(area, name, usable, " ".join(str(detail).split()))  # one line, however it was written


def _cuda_gpu() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, _no_gpu_reason()
    from kernelwright import environment

    env = environment.current("cuda")
    major, minor = torch.cuda.get_device_capability(0)
    count = torch.cuda.device_count()
    driver = f"driver {env.driver}" if env.driver else "driver unknown (nvidia-smi failed)"
    return True, f"{env.device_name} ×{count}, sm_{major}{minor}, {driver}, torch CUDA {torch.version.cuda}"


def _no_gpu_reason() -> str:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} built without CUDA; install a CUDA build of torch to use a GPU"
    return (
        f"no CUDA device visible (torch {torch.__version__}, CUDA {torch.version.cuda}); "
        "check nvidia-smi and CUDA_VISIBLE_DEVICES"
    )


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def _triton_gpu() -> tuple[bool, str]:
    version = _triton_version()
    if version is None:
        return False, "triton not installed; pip install triton"
    if not torch.cuda.is_available():
        return False, f"triton {version} installed, but {_no_gpu_reason()}"
    return True, f"triton {version}"


def _triton_interpreter() -> tuple[bool, str]:
    version = _triton_version()
    if version is None:
        return False, "triton not installed; pip install triton"
    return True, f"triton {version}; runs kernels on CPU tensors with TRITON_INTERPRET=1 (slow, for checking only)"


def _backend_available(module: str) -> tuple[bool, str]:
    try:
        backend = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # the backend is there but one of its own imports is missing
            raise
        return False, f"not installed ({module} is missing)"
    return backend.available()


def _load_inline() -> tuple[bool, str]:
    missing = []
    if not torch.cuda.is_available():
        missing.append(_no_gpu_reason())
    nvcc = _nvcc_path()
    if nvcc is None:
        missing.append("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    if shutil.which("ninja") is None:
        missing.append("ninja not found (pip install ninja)")
    release = _nvcc_release(nvcc) if nvcc else None
    if release and torch.version.cuda and release.split(".")[0] != torch.version.cuda.split(".")[0]:
        # torch refuses to build extensions with an nvcc of another major CUDA version.
        missing.append(f"nvcc is CUDA {release} but torch was built with CUDA {torch.version.cuda}")
    if missing:
        return False, "; ".join(missing)
    return True, f"nvcc CUDA {release}; compiles slowly (~28 s cold on an H100 machine), cached afterwards"


def _nvcc_path() -> str | None:
    # Where torch.utils.cpp_extension looks: CUDA_HOME / CUDA_PATH, then PATH, then /usr/local/cuda.
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and os.access(os.path.join(home, "bin", "nvcc"), os.X_OK):
            return os.path.join(home, "bin", "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    default = "/usr/local/cuda/bin/nvcc"
    return default if os.access(default, os.X_OK) else None


def _nvcc_release(nvcc: str) -> str | None:
    line = _version_line([nvcc, "--version"], "release")
    # "Cuda compilation tools, release 13.0, V13.0.88"
    return line.split("release", 1)[1].split(",")[0].strip() if line else None


def _nvcc() -> tuple[bool, str]:
    nvcc = _nvcc_path()
    if nvcc is None:
        return False, "nvcc not found; install the CUDA toolkit or set CUDA_HOME (only load_inline needs it)"
    line = _version_line([nvcc, "--version"], "release")
    return (True, f"{line} ({nvcc})") if line else (False, f"{nvcc} --version failed")


def _gxx_openmp() -> tuple[bool, str]:
    gxx = shutil.which("g++")
    if gxx is None:
        return False, "g++ not found; install g++ (e.g. apt-get install g++) for CPU C++ candidates"
    version = _version_line([gxx, "--version"], "") or "g++"
    with tempfile.TemporaryDirectory(prefix="kernelwright-doctor-") as tmp:
        out = subprocess.run(
            [gxx, "-fopenmp", "-x", "c++", "-", "-o", os.path.join(tmp, "probe")],
            input=_OPENMP_PROBE, capture_output=True, text=True, timeout=_TIMEOUT_S,
        )
    if out.returncode != 0:
        error = (out.stderr.strip().splitlines() or ["no output"])[0]
        return False, f"{version}, but -fopenmp does not build: {error} (install libgomp)"
    return True, version


def _ninja() -> tuple[bool, str]:
    ninja = shutil.which("ninja")
    if ninja is None:
        return False, "ninja not found; pip install ninja (load_inline builds with it)"
    version = _version_line([ninja, "--version"], "")
    return (True, f"ninja {version}") if version else (False, f"{ninja} --version failed")


def _nsight_compute() -> tuple[bool, str]:
    from kernelwright.evaluate import profile

    return profile.availability()


def _version_line(cmd: list[str], containing: str) -> str | None:
    """The first line of `cmd`'s output that contains `containing`, or None if it fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return next((line.strip() for line in out.stdout.splitlines() if containing in line), None)
