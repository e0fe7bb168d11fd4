"""Triton kernels compiled for sm_90 without a GPU, as a candidate's forward would launch them.

The forward runs on the meta device with its kernels replaced by recorders; each recorded launch is
then compiled for an H100 with the specializations Triton gives such a launch: pointers (torch allocates
them 16-byte aligned) divisible by 16, ints equal to 1 constant, other ints divisible by 16 when they
are. Used in the interpreter-free children of the expert template tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Launch = tuple[Any, tuple[Any, ...], dict[str, Any]]  # (kernel, positional args, keyword args)


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
    options = {key: kwargs.pop(key) for key in ("num_warps", "num_stages") if key in kwargs}
    types = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.float16: "*fp16"}
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
