"""Triton kernels compiled for sm_90 without a GPU, as a candidate's forward would launch them.

The forward runs on the meta device with its kernels replaced by recorders; each recorded launch is
then compiled for an H100 with the specializations Triton gives such a launch: pointers (torch allocates
them 16-byte aligned) divisible by 16, ints equal to 1 constant, other ints divisible by 16 when they
are. Used in the interpreter-free children of the expert template tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

Launch = tuple[Any, tuple[Any, ...], dict[str, Any]]  # (kernel, positional args, keyword args)
_MODULES = itertools.count()  # each loaded file gets a module name of its own


def load_module(path: Path) -> Any:
    """The Python file at `path` as a fresh module (a task file, or a candidate: Triton reads its kernels'
    source from the file)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"kw_sm90_{path.stem}_{next(_MODULES)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launches_of(source: str, task: Any, kernels: tuple[str, ...], dtype: Any, folder: Path) -> list[Launch]:
    """The launches of `kernels` that the candidate `source` (written into `folder`) makes for the task module
    `task`: ModelNew built from its init inputs and run on its inputs (floating ones cast to `dtype`), on the
    meta device, so at the task's main shapes without allocating them."""
    import torch

    path = folder / f"candidate_{next(_MODULES)}.py"
    path.write_text(source)
    candidate = load_module(path)
    launches = record_launches(candidate, kernels)
    with torch.device("meta"):
        inputs = [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                  for x in task.get_inputs()]
        candidate.ModelNew(*task.get_init_inputs()).to(dtype)(*inputs)
    return launches


def record_launches(module: Any, names: tuple[str, ...]) -> list[Launch]:
    """Replace the module's kernels `names` (those it has) by recorders; the list fills as they launch."""
    launches: list[Launch] = []

    class Recorder:  # kernel[grid](*args, **kwargs), kept instead of run
        def __init__(self, kernel: Any) -> None:
            self.kernel = kernel

        def __getitem__(self, grid: Any) -> Callable[..., None]:
            return lambda *args, **kwargs: launches.append((self.kernel, args, kwargs))

    for name in names:
        if hasattr(module, name):
            setattr(module, name, Recorder(getattr(module, name)))
    return launches


def compile_for_sm90(launch: Launch) -> Any:
    """One recorded launch compiled for sm_90 (Triton's CompiledKernel: metadata, asm)."""
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel, args, kwargs = launch
    kwargs = dict(kwargs)
    options = {key: kwargs.pop(key) for key in ("num_warps", "num_stages", "maxnreg", "launch_cooperative_grid")
               if key in kwargs}
    types = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.int64: "*i64",
             torch.int32: "*i32"}
    signature, constants, attrs = {}, dict(kwargs), {}
    for i, (name, value) in enumerate(zip(kernel.arg_names, args)):
        if isinstance(value, torch.Tensor):
            signature[name], attrs[(i,)] = types[value.dtype], [["tt.divisibility", 16]]
        elif isinstance(value, float):
            signature[name] = "fp32"
        elif value == 1:
            constants[name] = 1
        else:
            signature[name] = "i32"
            if value % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    signature |= dict.fromkeys(constants, "constexpr")
    return triton.compile(ASTSource(kernel, signature, constants, attrs), target=GPUTarget("cuda", 90, 32),
                          options=options)
