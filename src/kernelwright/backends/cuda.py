"""CUDA C++ kernels compiled with NVRTC and launched with the driver API on torch's stream.

    from kernelwright.backends import cuda
    mod = cuda.compile(SOURCE, options=("-O3",))
    mod.scale[(blocks,), (256,)](x, out, n)          # grid, block[, dynamic shared bytes]
    mod["scale"].launch(grid, block, x, out, n, shared_mem=0)

Compiling needs only NVRTC, no GPU; loading waits for the first launch. The target is
the current torch device's architecture, or sm_90 (H100, the reference GPU) where no
GPU is visible; `arch=` or an `--gpu-architecture` option overrides it. A real `sm_XY`
yields CUBIN, so the driver never JIT-compiles. Images are cached under
`cache_dir("cuda")` by source, options and NVRTC version. cuda-python is imported
only when used, so this module imports without it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from kernelwright.backends import CompileError, NamedItems, launches, signature
from kernelwright.paths import cache_dir

DEFAULT_ARCH = "sm_90"
_INSTALL_HINT = 'cuda-python is not installed; install it with: pip install "kernelwright[nvrtc]"'
# Above this much dynamic shared memory a kernel must opt in before launching.
_DEFAULT_SHARED_LIMIT = 48 * 1024
_lock = threading.Lock()


def compile(source: str, options: Sequence[str] = (), *, arch: str | None = None) -> Module:  # noqa: A001
    """Compile `source` with NVRTC (or take it from the cache); raise CompileError with NVRTC's log.

    `options` are NVRTC's; nvcc's `-O<n>` is accepted and handed to ptxas."""
    try:
        kernels = signature.parse_signatures(source, "global")
    except signature.SignatureError as error:
        raise CompileError(str(error)) from None
    flags = _nvrtc_options(options, arch or default_arch())
    key = hashlib.sha256(json.dumps([source, flags, _nvrtc_version()]).encode()).hexdigest()
    image_path, names_path = cache_dir("cuda") / f"{key}.cubin", cache_dir("cuda") / f"{key}.json"
    if names_path.exists() and image_path.exists():  # names are written last, after a complete image
        lowered = json.loads(names_path.read_text())
    else:
        image, lowered = _run_nvrtc(source, flags, {k.name: k.qualified_name for k in kernels.values()})
        _write_atomically(image_path, image)
        _write_atomically(names_path, json.dumps(lowered).encode())
    return Module(image_path, {n: Kernel(image_path, n, sig.params, lowered[n]) for n, sig in kernels.items()})


def default_arch() -> str:
    """The current torch CUDA device's architecture, or sm_90 where no GPU is visible."""
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        return f"sm_{major}{minor}"
    return DEFAULT_ARCH


def nvrtc_version() -> tuple[int, int] | None:
    """NVRTC's (major, minor), or None when cuda-python or the NVRTC library is missing."""
    try:
        return _nvrtc_version()
    except (ImportError, RuntimeError):
        return None


def available() -> tuple[bool, str]:
    """Whether CUDA candidates can be compiled here, and what stands in the way of running them."""
    try:
        major, minor = _nvrtc_version()
    except (ImportError, RuntimeError) as error:
        return False, str(error)
    if torch.cuda.is_available():
        return True, f"NVRTC {major}.{minor}; launches on {torch.cuda.get_device_name()} ({default_arch()})"
    return True, f"NVRTC {major}.{minor}; no CUDA GPU, so kernels compile (for {DEFAULT_ARCH}) but cannot launch"


class Module(NamedItems):
    """The kernels of one compiled source, by name: `mod.scale` or `mod["scale"]`."""

    def __init__(self, image_path: Path, kernels: dict[str, Kernel]) -> None:
        self.image_path = image_path  # CUBIN (or PTX for a virtual arch); `cuobjdump -sass` reads it
        self._kernels = kernels

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._kernels)

    def __getitem__(self, name: str) -> Kernel:
        try:
            return self._kernels[name]
        except KeyError:
            names = ", ".join(self.names) or "none"
            raise KeyError(f"no __global__ kernel named '{name}'; this module has: {names}") from None


class Kernel:
    """One `__global__` function; call `kernel[grid, block](*args)` or `kernel.launch(grid, block, *args)`."""

    def __init__(self, image_path: Path, name: str, params: list[signature.Param], lowered_name: str) -> None:
        self.name = name
        self.params = params
        self._image_path = image_path
        self._lowered_name = lowered_name
        self._functions: dict[int, Any] = {}  # device index -> CUfunction
        self._shared_opt_in: dict[int, int] = {}

    def __getitem__(self, config: tuple) -> Callable[..., None]:
        if not isinstance(config, tuple) or len(config) not in (2, 3):
            raise TypeError(f"launch '{self.name}' as kernel[grid, block](...) or kernel[grid, block, shared](...)")
        dims = _dims("grid", config[0]) + _dims("block", config[1])  # checked once, not per launch
        return functools.partial(self._launch, dims, config[2] if len(config) == 3 else 0)

    def launch(self, grid: int | Sequence[int], block: int | Sequence[int], *args: Any, shared_mem: int = 0) -> None:
        """Launch on torch's current stream; tensors go by data pointer, numbers by the parameter's C type."""
        self._launch(_dims("grid", grid) + _dims("block", block), shared_mem, *args)

    def _launch(self, dims: tuple[int, ...], shared_mem: int, *args: Any) -> None:
        device = _current_device()
        values, types = signature.bind_args(f"kernel '{self.name}'", self.params, args, torch.device("cuda", device))
        function = self._function(device, shared_mem)
        # torch.cuda.current_stream() builds a Stream object per call (~3 us); Triton's launcher reads this too.
        stream = _driver().CUstream(torch._C._cuda_getCurrentRawStream(device))
        launch = _driver().cuLaunchKernel(function, *dims, shared_mem, stream, (values, types), 0)
        _check(launch, f"cuLaunchKernel({self.name})")
        launches.record(self.name, 0.0)  # launches are asynchronous; GPU time comes from the profiler

    def _function(self, device: int, shared_mem: int) -> Any:
        driver = _driver()
        with _lock:
            if device not in self._functions:
                module = _loaded_module(self._image_path, device)
                lookup = driver.cuModuleGetFunction(module, self._lowered_name.encode())
                self._functions[device] = _check(lookup, f"cuModuleGetFunction({self.name})")
            function = self._functions[device]
            if shared_mem > max(_DEFAULT_SHARED_LIMIT, self._shared_opt_in.get(device, 0)):
                attribute = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
                _check(driver.cuFuncSetAttribute(function, attribute, shared_mem), "cuFuncSetAttribute")
                self._shared_opt_in[device] = shared_mem
        return function


@functools.cache
def _loaded_module(image_path: Path, device: int) -> Any:
    # Called with `device`'s context current (hence the key); stays loaded for the process.
    return _check(_driver().cuModuleLoadData(image_path.read_bytes()), "cuModuleLoadData")


def _nvrtc_options(options: Sequence[str], arch: str) -> list[str]:
    # nvcc's -O<n> sets the host optimisation level, and NVRTC rejects it; the device
    # optimiser is ptxas, so that is where the level goes (ptxas defaults to -O3).
    flags = [f"--ptxas-options={o}" if re.fullmatch(r"-O[0-3]", o) else o for o in options]
    if not any(f.startswith(("-arch", "--gpu-architecture")) for f in flags):
        flags.append(f"--gpu-architecture={arch}")
    if not any(f.startswith(("-std", "--std")) for f in flags):
        flags.append("--std=c++17")
    flags += [f"--include-path={folder}" for folder in _include_dirs()]
    return flags


@functools.cache
def _include_dirs() -> tuple[str, ...]:
    """The folder holding cuda_fp16.h and friends, if any: NVRTC has no default search path,
    and those headers ship with the CUDA runtime (toolkit or nvidia-cuda-runtime wheel), not NVRTC."""
    candidates = []
    try:
        from cuda import pathfinder

        candidates.append(pathfinder.find_nvidia_header_directory("cudart"))
    except Exception:  # an old or absent pathfinder only means looking in the usual places
        pass
    roots = (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda")
    candidates += [os.path.join(root, "include") for root in roots if root]
    # One folder only: mixing headers of two CUDA versions breaks in confusing ways.
    return next(((c,) for c in candidates if c and os.path.isfile(os.path.join(c, "cuda_fp16.h"))), ())


def _run_nvrtc(source: str, flags: list[str], name_expressions: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """Compile; return the image and each kernel's lowered (mangled) name."""
    nvrtc = _cuda_python("nvrtc")
    program = _check(nvrtc.nvrtcCreateProgram(source.encode(), b"kernel.cu", 0, [], []), "nvrtcCreateProgram")
    try:
        # Name expressions let NVRTC tell us the mangled name of kernels without extern "C".
        for expression in name_expressions.values():
            _check(nvrtc.nvrtcAddNameExpression(program, expression.encode()), "nvrtcAddNameExpression")
        (result,) = nvrtc.nvrtcCompileProgram(program, len(flags), [f.encode() for f in flags])
        if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            size = _check(nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
            log = b" " * size
            _check(nvrtc.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
            message = f"NVRTC failed ({result.name}) with options {' '.join(flags)}"
            raise CompileError(message, log.rstrip(b"\0 ").decode())
        lowered = {
            name: _check(nvrtc.nvrtcGetLoweredName(program, expression.encode()), "nvrtcGetLoweredName").decode()
            for name, expression in name_expressions.items()
        }
        return _image(nvrtc, program), lowered
    finally:
        nvrtc.nvrtcDestroyProgram(program)


def _image(nvrtc: Any, program: Any) -> bytes:
    """CUBIN when compiled for a real architecture; otherwise PTX (with its trailing NUL), for the driver to JIT."""
    for kind in ("CUBIN", "PTX"):
        size = _check(getattr(nvrtc, f"nvrtcGet{kind}Size")(program), f"nvrtcGet{kind}Size")
        if size:
            image = b" " * size
            _check(getattr(nvrtc, f"nvrtcGet{kind}")(program, image), f"nvrtcGet{kind}")
            return image
    raise RuntimeError("NVRTC produced neither CUBIN nor PTX")


def _write_atomically(path: Path, data: bytes) -> None:
    # Workers may compile the same source at once; a rename never exposes a half-written file.
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _current_device() -> int:
    """torch's current device, with its primary context (the one torch uses) current on this thread."""
    driver = _driver()  # first, as it says clearly when there is no GPU
    device = torch.cuda.current_device()  # initialises torch's CUDA state, and with it the primary context
    if int(_check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")) != int(_primary_context(device)):
        _check(driver.cuCtxSetCurrent(_primary_context(device)), "cuCtxSetCurrent")
    return device


@functools.cache
def _primary_context(device: int) -> Any:
    # Retained once per device and never released: torch keeps it alive for the process anyway.
    driver = _driver()
    cu_device = _check(driver.cuDeviceGet(device), "cuDeviceGet")
    return _check(driver.cuDevicePrimaryCtxRetain(cu_device), "cuDevicePrimaryCtxRetain")


def _dims(what: str, value: int | Sequence[int]) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, int) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, int) and d >= 1 for d in dims):
        raise ValueError(f"{what} must be 1 to 3 positive ints, got {value!r}")
    return dims + (1,) * (3 - len(dims))  # type: ignore[return-value]


def _check(result: tuple, call: str) -> Any:
    """Raise on a failed NVRTC or driver call, naming its result code; return its output, if any."""
    status, *outputs = result
    if int(status) != 0:  # NVRTC_SUCCESS and CUDA_SUCCESS are both 0
        raise RuntimeError(f"{call} failed: {status.name}")
    return tuple(outputs) if len(outputs) > 1 else outputs[0] if outputs else None


@functools.cache
def _nvrtc_version() -> tuple[int, int]:
    nvrtc = _cuda_python("nvrtc")
    try:
        major, minor = _check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    except Exception as error:  # cuda-python reports a missing libnvrtc with its own exception types
        raise RuntimeError(f"NVRTC could not be loaded ({error}); pip install nvidia-cuda-nvrtc") from error
    return major, minor


@functools.cache
def _driver() -> Any:
    """The driver API, once torch has a GPU; only launches need it."""
    if not torch.cuda.is_available():
        raise RuntimeError("cannot launch CUDA kernels: torch sees no CUDA GPU (compiling works without one)")
    driver = _cuda_python("driver")
    _check(driver.cuInit(0), "cuInit")  # torch initialised the driver already; cuda-python needs its own entry
    return driver


def _cuda_python(module: str) -> Any:
    try:
        return importlib.import_module(f"cuda.bindings.{module}")
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
