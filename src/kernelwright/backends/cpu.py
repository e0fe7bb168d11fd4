"""C++ functions compiled with g++ (OpenMP on) and called through ctypes on torch CPU tensors.

    from kernelwright.backends import cpu
    lib = cpu.compile(SOURCE)
    lib.relu(x, out, x.numel())

The callable functions are those declared `extern "C"` in the source. Tensors are
passed as data pointers after checking only that they live on the CPU: dtype,
strides and contiguity are the function's business. Shared objects are cached
under `cache_dir("cpu")`, keyed by source, flags, compiler version and host CPU
(the code is built with -march=native). Each call is timed and recorded in
`launches`, since no profiler sees ctypes calls.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kernelwright.backends import CompileError, NamedItems, launches, signature
from kernelwright.paths import cache_dir

FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
_CPU = torch.device("cpu")
_PROBE = '#include <omp.h>\nextern "C" int kernelwright_probe() { return omp_get_max_threads(); }\n'


def compile(source: str, extra_flags: Sequence[str] = ()) -> Library:  # noqa: A001
    """Build `source` into a shared library (or reuse the cached one); CompileError carries the compiler's stderr."""
    try:
        functions = signature.parse_signatures(source, "extern_c")
    except signature.SignatureError as error:
        raise CompileError(str(error)) from None
    compiler = _compiler()
    flags = [*FLAGS, *extra_flags]
    key = hashlib.sha256(json.dumps([source, flags, _compiler_version(compiler), _host()]).encode()).hexdigest()
    path = cache_dir("cpu") / f"{key}.so"
    if not path.exists():
        _build(compiler, source, flags, path)
    return Library(path, functions)


def available() -> tuple[bool, str]:
    """Whether CPU candidates can be built here: a C++ compiler that handles OpenMP."""
    try:
        compiler = _compiler()
        compile(_PROBE)
    except (RuntimeError, CompileError, OSError, subprocess.SubprocessError) as error:
        return False, str(error).splitlines()[0]
    return True, f"{_compiler_version(compiler)}, OpenMP"


class Library(NamedItems):
    """The `extern "C"` functions of one compiled source, by name: `lib.relu` or `lib["relu"]`."""

    def __init__(self, path: Path, functions: dict[str, signature.Signature]) -> None:
        self.path = path
        self._cdll = ctypes.CDLL(str(path))
        self._signatures = functions
        self._functions: dict[str, Function] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._signatures)

    def __getitem__(self, name: str) -> Function:
        if name not in self._functions:
            if name not in self._signatures:
                names = ", ".join(self.names) or "none"
                raise KeyError(f"no extern \"C\" function named '{name}'; this library has: {names}")
            # Looked up on first use: a declaration whose definition lives elsewhere fails only if called.
            self._functions[name] = Function(self._signatures[name], getattr(self._cdll, name))
        return self._functions[name]


class Function:
    """One C function; calling it checks the arguments, runs it and records the time it took."""

    def __init__(self, sig: signature.Signature, cfunction: Any) -> None:
        self.name = sig.name
        self.params = sig.params
        self._cfunction = cfunction
        self._cfunction.argtypes = [p.ctypes_type for p in sig.params]
        self._cfunction.restype = sig.result_type

    def __call__(self, *args: Any) -> Any:
        values, _ = signature.bind_args(f"function '{self.name}'", self.params, args, _CPU)
        start = time.perf_counter()
        result = self._cfunction(*values)  # ctypes releases the GIL for the call
        launches.record(self.name, time.perf_counter() - start)
        return result


def _build(compiler: str, source: str, flags: list[str], path: Path) -> None:
    # Workers may build the same source at once: each writes its own file, and the
    # rename into place is atomic, so nobody ever loads a half-written library.
    temporary = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.so")
    with tempfile.TemporaryDirectory(prefix="kernelwright-cpu-") as work:
        source_path = Path(work) / "kernel.cpp"
        source_path.write_text(source)
        result = subprocess.run(
            [compiler, *flags, str(source_path), "-o", str(temporary)], capture_output=True, text=True
        )
    if result.returncode != 0:
        temporary.unlink(missing_ok=True)
        raise CompileError(f"{compiler} failed (exit {result.returncode})", result.stderr)
    os.replace(temporary, path)


def _compiler() -> str:
    name = os.environ.get("CXX") or "g++"
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"no C++ compiler '{name}' on PATH: install g++ or set $CXX")
    return found


@functools.cache
def _compiler_version(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()[0]


@functools.cache
def _host() -> str:
    """The CPU model, part of the cache key because -march=native code may not run on another CPU."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return f"{platform.machine()} {models[0] if models else ''}"
