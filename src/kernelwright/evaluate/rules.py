"""The tables behind the static checker (`checks.py`): what a candidate may call, import and touch.

A candidate must do its work in its own kernels. Everything here exists to
tell its own work (kernel launches, allocation, views, shape arithmetic)
apart from work done by someone else (PyTorch, numpy, the reference model)
and from tricks that fool the evaluator (patched timers, cached outputs,
swallowed errors). Dotted names are fully resolved: `F.linear` is listed as
`torch.nn.functional.linear`.
"""

from __future__ import annotations

import ast
import functools
import re

import torch

from kernelwright.backends import CPU, CUDA_INLINE, CUDA_NVRTC

# Rule ids, stable: reports, tests and the docs name rules by these.
SYNTAX = "syntax"
NO_MODEL_NEW = "no-model-new"
TORCH_COMPUTE = "torch-compute"
TRY_EXCEPT = "try-except"
REFERENCE_MODEL = "reference-model"
STREAMS_EVENTS = "streams-events"
TIMING_PATCH = "timing-patch"
THREADS_PROCESSES = "threads-processes"
INTROSPECTION = "introspection"
IO = "io"
TENSOR_SUBCLASS = "tensor-subclass"
NO_CUSTOM_KERNEL = "no-custom-kernel"
GLOBAL_STATE = "global-state"

# Calls that build a kernel module, and the backend each one means.
KERNEL_BUILDERS = {
    "kernelwright.backends.cuda.compile": CUDA_NVRTC,
    "kernelwright.backends.cpu.compile": CPU,
    "torch.utils.cpp_extension.load_inline": CUDA_INLINE,
}
# A function decorated with (or wrapped by) one of these is a Triton kernel.
TRITON_JIT = frozenset({"triton.jit", "triton.runtime.jit", "triton.runtime.jit.jit"})

# --- What PyTorch work a candidate may do itself: allocate, reshape, ask about shapes.
TENSOR_VIEW_METHODS = frozenset({
    "new_empty", "new_zeros", "new_ones", "new_full", "view", "reshape", "flatten", "unflatten",
    "unsqueeze", "squeeze", "permute", "transpose", "t", "expand", "expand_as", "view_as",
    "contiguous", "narrow", "select", "unbind", "chunk", "split", "as_strided",
})
# These return plain Python values (ints, tuples, a device), never tensors.
TENSOR_QUERY_METHODS = frozenset({
    "size", "dim", "ndimension", "numel", "nelement", "stride", "storage_offset", "data_ptr",
    "is_contiguous", "element_size", "get_device", "is_floating_point", "item",
})
TENSOR_ALLOWED_METHODS = TENSOR_VIEW_METHODS | TENSOR_QUERY_METHODS
# Every callable on torch.Tensor; calling one not allowed above is PyTorch compute.
TENSOR_METHODS = frozenset(
    n for n in dir(torch.Tensor) if not n.startswith("_") and callable(getattr(torch.Tensor, n))
)
# Tensor methods that lists, sets and dicts have too: compute only on a known tensor.
AMBIGUOUS_METHODS = frozenset({"add", "index", "sort", "values"})
# Attributes of a tensor that are tensors themselves (views or the same storage).
TENSOR_VALUE_ATTRS = frozenset({"T", "mT", "H", "mH", "data", "real", "imag", "grad"})
# Attributes of a torch.nn module that are tensors: reading them feeds a kernel, fine.
NN_TENSOR_ATTRS = frozenset({"weight", "bias", "running_mean", "running_var"})

TORCH_FACTORIES = frozenset({
    "torch.empty", "torch.empty_like", "torch.empty_strided", "torch.zeros", "torch.zeros_like",
    "torch.ones", "torch.ones_like", "torch.full", "torch.full_like", "torch.arange",
} | {f"torch.{m}" for m in TENSOR_VIEW_METHODS if hasattr(torch, m)})
# Allowed torch calls that return no tensor: devices, dtypes, grad modes.
TORCH_QUERIES = frozenset({
    "torch.Size", "torch.device", "torch.finfo", "torch.iinfo", "torch.is_tensor", "torch.numel",
    "torch.get_default_dtype", "torch.no_grad", "torch.inference_mode", "torch.cuda.device",
    "torch.cuda.current_device", "torch.cuda.is_available", "torch.cuda.device_count",
    "torch.cuda.get_device_properties", "torch.cuda.get_device_capability",
    "torch.cuda.get_device_name", "torch.utils.cpp_extension.load_inline",
})
TORCH_ALLOWED = TORCH_FACTORIES | TORCH_QUERIES
# Classes whose subclasses are tensors (rule tensor-subclass), and the torch.nn bases a
# candidate may inherit from; any other torch.nn base inherits PyTorch's forward.
TENSOR_CLASSES = frozenset({"torch.Tensor", "torch.nn.Parameter", "torch.nn.parameter.Parameter"})
ALLOWED_TORCH_BASES = frozenset({"torch.nn.Module", "torch.autograd.Function"})

# Builtins that compute when handed a tensor (they call its operators).
TENSOR_BUILTINS = frozenset({"abs", "sum", "max", "min", "pow", "round", "divmod", "sorted", "any", "all"})
# Builtins that return plain values whatever they are given.
SCALAR_BUILTINS = frozenset({"len", "int", "float", "bool", "str", "range", "isinstance", "hasattr", "print"})
# Libraries that compute on a tensor handed to them (numpy shares a CPU tensor's memory).
LIBRARY_COMPUTE_ROOTS = frozenset({"numpy", "math"})
# Container methods that store a value: on shared state, that is an output cache.
MUTATING_METHODS = frozenset({
    "append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "add",
    "remove", "discard",
})

# Operators, by the names a caller's `allowed_ops` may use for them (torch's name, then the symbol).
OPERATOR_NAMES = {
    ast.Add: ("add", "+"), ast.Sub: ("sub", "-"), ast.Mult: ("mul", "*"), ast.Div: ("div", "/"),
    ast.FloorDiv: ("floor_divide", "//"), ast.Mod: ("remainder", "%"), ast.Pow: ("pow", "**"),
    ast.MatMult: ("matmul", "@"), ast.LShift: ("bitwise_left_shift", "<<"),
    ast.RShift: ("bitwise_right_shift", ">>"), ast.BitAnd: ("bitwise_and", "&"),
    ast.BitOr: ("bitwise_or", "|"), ast.BitXor: ("bitwise_xor", "^"), ast.USub: ("neg", "-"),
    ast.UAdd: ("positive", "+"), ast.Invert: ("bitwise_not", "~"), ast.Not: ("logical_not", "not"),
    ast.Lt: ("lt", "<"), ast.LtE: ("le", "<="), ast.Gt: ("gt", ">"), ast.GtE: ("ge", ">="),
    ast.Eq: ("eq", "=="), ast.NotEq: ("ne", "!="), ast.In: ("isin", "in"), ast.NotIn: ("isin", "not in"),
}

# --- Imports. A candidate needs torch, triton, kernelwright's backends and a few small
# stdlib helpers; any other module may be the task module holding the reference Model.
ALLOWED_IMPORT_ROOTS = frozenset({
    "__future__", "typing", "dataclasses", "math", "functools", "itertools", "collections",
    "enum", "abc", "numbers", "warnings", "contextlib", "os", "numpy", "torch", "triton",
    "kernelwright",
})

# Banned names, first match wins: (pattern, rule, why). A pattern matches a dotted name equal
# to it or inside it ("time" matches "time.perf_counter"); a trailing "*" matches any name
# starting with the rest ("os.exec*"). Rule None marks an allowed exception to a later line.
_SYNC = "the evaluator owns synchronisation; a candidate that syncs or forks streams games the timer"
BANNED = (
    ("kernelwright.backends.launches", TIMING_PATCH, "the launch record is the evaluator's; writing it fakes launches"),
    ("kernelwright.backends", None, ""),
    ("kernelwright", TIMING_PATCH, "candidates may import only kernelwright.backends"),
    ("torch.cuda.Event", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.Stream", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.stream", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.streams", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.ExternalStream", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.StreamContext", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.current_stream", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.default_stream", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.set_stream", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.synchronize", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.graph", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.graphs", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.CUDAGraph", STREAMS_EVENTS, _SYNC),
    ("torch.cuda.make_graphed_callables", STREAMS_EVENTS, _SYNC),
    ("torch.Stream", STREAMS_EVENTS, _SYNC),
    ("torch.Event", STREAMS_EVENTS, _SYNC),
    ("cupy.cuda.Stream", STREAMS_EVENTS, _SYNC),
    ("torch.profiler", TIMING_PATCH, "profilers belong to the evaluator"),
    ("torch.autograd.profiler", TIMING_PATCH, "profilers belong to the evaluator"),
    ("torch.multiprocessing", THREADS_PROCESSES, "work must run in the process being timed"),
    ("torch.save", IO, "candidates must not read or write files"),
    ("torch.load", IO, "candidates must not read or write files"),
    ("torch.from_file", IO, "candidates must not read or write files"),
    ("torch.hub", IO, "candidates must not read or write files"),
    ("torch.utils.cpp_extension.load", IO, "use load_inline with the source in the candidate"),
    ("torch.compile", TENSOR_SUBCLASS, "torch.compile makes torch's kernels, not yours"),
    ("torch.jit", TENSOR_SUBCLASS, "torch.jit makes torch's kernels, not yours"),
    ("torch.overrides", TENSOR_SUBCLASS, "overrides reroute torch calls behind the evaluator's back"),
    ("torch.library", TENSOR_SUBCLASS, "registering ops reroutes torch calls"),
    ("torch.utils._python_dispatch", TENSOR_SUBCLASS, "dispatch modes reroute torch calls"),
    ("torch._*", TENSOR_SUBCLASS, "torch internals (_C, _dynamo, ...) reroute or replace torch calls"),
    ("functools.lru_cache", GLOBAL_STATE, "a cache returns earlier outputs instead of computing"),
    ("functools.cache", GLOBAL_STATE, "a cache returns earlier outputs instead of computing"),
    ("functools.cached_property", GLOBAL_STATE, "a cache returns earlier outputs instead of computing"),
    ("contextlib.suppress", TRY_EXCEPT, "swallowed errors hide a failing kernel behind a fallback"),
    ("time", TIMING_PATCH, "clocks belong to the evaluator"),
    ("timeit", TIMING_PATCH, "clocks belong to the evaluator"),
    ("triton.testing", TIMING_PATCH, "benchmark helpers belong to the evaluator"),
    ("builtins", TIMING_PATCH, "the builtins module lets a candidate patch anything"),
    ("threading", THREADS_PROCESSES, "work must run in the thread being timed"),
    ("_thread", THREADS_PROCESSES, "work must run in the thread being timed"),
    ("multiprocessing", THREADS_PROCESSES, "work must run in the process being timed"),
    ("concurrent", THREADS_PROCESSES, "work must run in the thread being timed"),
    ("asyncio", THREADS_PROCESSES, "work must run in the thread being timed"),
    ("subprocess", THREADS_PROCESSES, "work must run in the process being timed"),
    ("signal", THREADS_PROCESSES, "signal handlers run code outside the timed call"),
    ("os.fork*", THREADS_PROCESSES, "work must run in the process being timed"),
    ("os.system", THREADS_PROCESSES, "work must run in the process being timed"),
    ("os.popen", THREADS_PROCESSES, "work must run in the process being timed"),
    ("os.exec*", THREADS_PROCESSES, "work must run in the process being timed"),
    ("os.spawn*", THREADS_PROCESSES, "work must run in the process being timed"),
    ("os.posix_spawn*", THREADS_PROCESSES, "work must run in the process being timed"),
    ("os.kill", THREADS_PROCESSES, "work must run in the process being timed"),
    ("os.environ", None, ""),
    ("os.getenv", None, ""),
    ("os.path", None, ""),
    ("os.cpu_count", None, ""),
    ("os.*", IO, "candidates must not touch files or the process"),
    ("numpy.save*", IO, "candidates must not read or write files"),
    ("numpy.load*", IO, "candidates must not read or write files"),
    ("numpy.fromfile", IO, "candidates must not read or write files"),
    ("numpy.memmap", IO, "candidates must not read or write files"),
    ("numpy.genfromtxt", IO, "candidates must not read or write files"),
    ("pathlib", IO, "candidates must not read or write files"),
    ("shutil", IO, "candidates must not read or write files"),
    ("tempfile", IO, "candidates must not read or write files"),
    ("io", IO, "candidates must not read or write files"),
    ("pickle", IO, "candidates must not read or write files"),
    ("socket", IO, "candidates must not use the network"),
    ("urllib", IO, "candidates must not use the network"),
    ("requests", IO, "candidates must not use the network"),
    ("http", IO, "candidates must not use the network"),
    ("gc", INTROSPECTION, "it reaches the evaluator's objects"),
    ("inspect", INTROSPECTION, "it reaches the evaluator's frames and objects"),
    ("sys", INTROSPECTION, "it reaches the evaluator's modules and frames"),
    ("ctypes", INTROSPECTION, "raw memory access; build kernels through kernelwright.backends"),
    ("importlib", INTROSPECTION, "dynamic imports hide what the candidate uses"),
    ("weakref", INTROSPECTION, "it reaches the evaluator's objects"),
    ("traceback", INTROSPECTION, "it reaches the evaluator's frames"),
    ("types", INTROSPECTION, "it builds frames, code and functions by hand"),
)

# Builtins a candidate must not name at all (calling them through an alias is no better).
BANNED_BUILTINS = {
    "open": (IO, "candidates must not read or write files"),
    "input": (IO, "candidates must not read input"),
    "exec": (INTROSPECTION, "code built at run time hides what the candidate does"),
    "eval": (INTROSPECTION, "code built at run time hides what the candidate does"),
    "compile": (INTROSPECTION, "code built at run time hides what the candidate does"),
    "globals": (INTROSPECTION, "it reaches module state by name"),
    "locals": (INTROSPECTION, "it reaches frame state by name"),
    "vars": (INTROSPECTION, "it reaches object state by name"),
    "breakpoint": (INTROSPECTION, "a debugger hook runs arbitrary code"),
}
# Frame and traceback attributes: they lead to the evaluator's local variables.
FRAME_ATTRS = frozenset({"f_back", "f_locals", "f_globals", "f_builtins", "f_code", "tb_frame",
                         "gi_frame", "cr_frame", "ag_frame"})
# Dunder names a candidate may use; every other dunder reaches interpreter internals
# (`__dict__`, `__class__`, `__globals__`) or calls tensor operators by hand (`x.__add__`).
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__all__"})
# Dunder methods a class may define other than __init__, and the rule for the rest.
DUNDER_METHOD_RULES = {
    "__exit__": (TRY_EXCEPT, "an __exit__ can swallow a failing kernel's error"),
    "__aexit__": (TRY_EXCEPT, "an __exit__ can swallow a failing kernel's error"),
    "__torch_function__": (TENSOR_SUBCLASS, "it reroutes torch calls"),
    "__torch_dispatch__": (TENSOR_SUBCLASS, "it reroutes torch calls"),
}

# --- C/C++ sources (load_inline, NVRTC, CPU) are not Python: regexes over the string's text.
_LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\s*\([^)]*\)")
_GLOBAL_FN = re.compile(r"__global__\b[^;{}()]*?(\w+)\s*\(")
_EXTERN_C_FN = re.compile(r'extern\s+"C"\s+(?!\{)([^;{}()]*?)(\w+)\s*\(')
_EXTERN_C_BLOCK = re.compile(r'extern\s+"C"\s*\{')
_C_SIGNATURE = re.compile(r"([^=]*?)(\w+)\s*\([^()]*\)\s*(?:const\s*)?$")
# The same games as in Python, written in C: (pattern, rule, why).
_C_PATTERNS = (
    (re.compile(r"\b(cudaStreamCreate\w*|cudaEventCreate\w*|cudaGraph\w*|cuStreamCreate\w*|cuEventCreate\w*"
                r"|cudaDeviceSynchronize|torch::cuda::synchronize)\b"),
     STREAMS_EVENTS, "the evaluator owns streams and synchronisation; launch on the current stream"),
    (re.compile(r"\b(cublas\w*|cudnn\w*|cufft\w*|cusparse\w*|cusolver\w*)\s*\("),
     TORCH_COMPUTE, "library compute is not your kernel; write the kernel"),
    (re.compile(r"\b((?:torch|at)::(?!(?:empty|empty_like|empty_strided|zeros|zeros_like|ones|ones_like|full"
                r"|full_like|arange|from_blob|dtype|device|layout)\b)[a-z_]\w*)\s*\("),
     TORCH_COMPUTE, "PyTorch's C++ ops are PyTorch compute; allocate with torch::empty and launch your kernel"),
)


def banned(name: str) -> tuple[str, str] | None:
    """(rule, why) for a banned dotted name, or None where it is allowed."""
    for pattern, rule, why in BANNED:
        if pattern.endswith("*"):
            hit = name.startswith(pattern[:-1])
        else:
            hit = name == pattern or name.startswith(pattern + ".")
        if hit:
            return None if rule is None else (rule, why)
    return None


@functools.lru_cache(maxsize=None)
def torch_object(name: str) -> object | None:
    """The real object a dotted `torch.*` name refers to, to tell functions from classes and dtypes."""
    if name.split(".")[0] != "torch":
        return None
    obj: object = torch
    for part in name.split(".")[1:]:
        try:
            obj = getattr(obj, part)
        except Exception:  # lazy torch submodules raise more than AttributeError
            return None
    return obj


def is_torch_function(name: str) -> bool:
    """Whether a `torch.*` name is a function (so handing it around hands PyTorch compute around)."""
    obj = torch_object(name)
    return callable(obj) and not isinstance(obj, type)


def is_torch_module_class(name: str) -> bool:
    """Whether a `torch.*` name is a torch.nn module class (calling an instance runs its forward)."""
    obj = torch_object(name)
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def cuda_kernel_names(text: str) -> set[str]:
    """Names of the `__global__` functions in a CUDA source."""
    return set(_GLOBAL_FN.findall(_LAUNCH_BOUNDS.sub(" ", text)))


def extern_c_names(text: str) -> set[str]:
    """Names of the host functions a C/C++ source exports with `extern "C"` (one by one or in a block)."""
    names = {m.group(2) for m in _EXTERN_C_FN.finditer(text) if not _is_gpu_code(m.group(1))}
    for block in _EXTERN_C_BLOCK.finditer(text):
        depth, segment = 0, ""
        for ch in text[block.end():]:
            if depth == 0 and ch in "{;":  # a declaration at the block's own level ends here
                signature = _C_SIGNATURE.search(segment)
                if signature and not _is_gpu_code(signature.group(1)):
                    names.add(signature.group(2))
                segment = ""
            if ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    break  # the extern "C" block itself ends here
                depth -= 1
            elif depth == 0 and ch != ";":
                segment += ch
    return names


def _is_gpu_code(prefix: str) -> bool:
    return "__global__" in prefix or "__device__" in prefix


def c_source_violations(text: str) -> list[tuple[str, str, str]]:
    """(rule, what was found, why) for each cheat pattern in a C/C++ source."""
    return [(rule, m.group(1), why) for pattern, rule, why in _C_PATTERNS if (m := pattern.search(text))]
