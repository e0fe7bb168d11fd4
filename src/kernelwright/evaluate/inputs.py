"""Inputs for correctness and timing: seeded, redrawn from other distributions, poisoned, guarded.

Runs in the workers. Every function here is deterministic in its seed, so a
failing trial can be named (variant, seed, distribution) and replayed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def torch_dtype(name: str | None) -> torch.dtype | None:
    return _DTYPES[name] if name else None


@contextlib.contextmanager
def variant_globals(module: ModuleType, variant: dict[str, Any]) -> Iterator[None]:
    """Override the task module's globals (its shape constants) for one shape variant."""
    saved = {name: getattr(module, name) for name in variant}
    for name, value in variant.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def redraw(inputs: list[Any], distribution: dict[str, Any] | None, seed: int) -> list[Any]:
    """Replace every floating-point tensor's values with draws from `distribution` (None: keep them).

    Integer and boolean tensors (indices, targets, masks) and non-tensors keep
    the task's values: their meaning depends on the task.
    """
    if distribution is None:
        return inputs
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            gen = torch.Generator(device=x.device).manual_seed(seed * 1000 + i)
            values = torch.empty(x.shape, dtype=torch.float32, device=x.device)
            if distribution["name"] == "normal":
                values.normal_(distribution.get("mean", 0.0), distribution.get("std", 1.0), generator=gen)
            else:
                values.uniform_(distribution.get("low", -1.0), distribution.get("high", 1.0), generator=gen)
            x = values.to(dtype=x.dtype, device=x.device)
        out.append(x)
    return out


def to_device(inputs: list[Any], device: str, dtype: torch.dtype | None) -> list[Any]:
    """Move tensors to the device, casting floating ones to the task's dtype when it sets one."""
    out = []
    for x in inputs:
        if isinstance(x, torch.Tensor):
            x = x.to(device=device, dtype=dtype if dtype is not None and x.is_floating_point() else x.dtype)
        out.append(x)
    return out


def clone(inputs: list[Any]) -> list[Any]:
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]


def first_changed(inputs: list[Any], pristine: list[Any]) -> int | None:
    """Index of the first input tensor whose contents differ from its pristine copy (NaN equals NaN)."""
    for i, (x, p) in enumerate(zip(inputs, pristine)):
        if isinstance(x, torch.Tensor) and not torch.equal(x, p):
            if x.is_floating_point() and x.shape == p.shape and ((x == p) | (x.isnan() & p.isnan())).all():
                continue
            return i
    return None


def poison(specs: list[tuple[list[int], str]], device: str) -> None:
    """Fill memory that the next allocations of these shapes will likely reuse with NaN bytes.

    PyTorch's caching allocator hands a freed block back to the next request of
    the same size, so an output the candidate allocates but never writes holds
    NaN (floats) or -1 (integers) and fails the comparison. On the CPU, large
    blocks come fresh from the kernel as zeros instead: unwritten outputs read
    as zeros there, which fails against any non-degenerate reference.
    """
    for shape, dtype_name in specs:
        block = torch.empty(shape, dtype=getattr(torch, dtype_name), device=device)
        if block.numel():
            block.view(-1).view(torch.uint8).fill_(0xFF)
        del block


def output_list(outputs: Any) -> list[torch.Tensor]:
    """The reference's or candidate's outputs as a list of tensors; TypeError for anything else."""
    items = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    for i, item in enumerate(items):
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"output {i} is a {type(item).__name__}, not a tensor")
    return items


def specs(outputs: list[torch.Tensor]) -> list[tuple[list[int], str]]:
    return [(list(t.shape), str(t.dtype).removeprefix("torch.")) for t in outputs]
