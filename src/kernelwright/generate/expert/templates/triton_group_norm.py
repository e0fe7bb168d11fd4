"""Triton template for group norm (Norm kind "group"): each sample's channels in groups of C / groups, each
group normalized by its own mean and variance, then scaled and shifted per channel, then the epilogue.

A group is one contiguous row of (C / groups) * H * W elements, and such rows are long and few (Stable
Diffusion's VAE decoder: 192 rows of a million elements): a program per row would leave most of an H100
idle. So two kernels, each spread over many programs:

  kw_gn_stats  grid (rows, SPLIT): each program sums d = x - shift and d^2 over its chunk of the row, in one
               read. shift is the row's first value, the same for every chunk, so the chunks' sums add up;
               being near the mean, it keeps E[d^2] - E[d]^2 from cancelling (as the looped layer norm).
  kw_gn_apply  grid (samples x channels, blocks of H * W): each program adds up its row's SPLIT partial sums
               into the mean and 1 / std, folds them and its channel's weight and bias into one scale and one
               offset (no per-element channel index), and writes x * scale + offset through the epilogue.

x is read twice and the output written once, as by PyTorch's own kernels: a group this long does not fit
on chip to be read once.

Parameters: SPLIT (programs per row for the statistics), BLOCK (elements per step of the statistics, and per
program of the apply kernel), num_warps.
"""

from __future__ import annotations

import math
from typing import Any

from kernelwright.generate.expert.patterns import Analysis, Norm, Value, Weight, leaves
from kernelwright.generate.expert.templates.triton import _doc, _Kernel, _valid

# part: per row, SPLIT sums of d, then SPLIT sums of d^2, then SPLIT copies of the shift (one per program).
_STATS = """@triton.jit
def kw_gn_stats({args}part, cols, chunk, SPLIT: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
    c = tl.arange(0, BLOCK)
    mask = c < 1
    shift = tl.sum(tl.where(mask, kw_prologue({args}base + c, c, mask), 0.0), axis=0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK], dtype=tl.float32)
    first = tl.program_id(1) * chunk
    last = tl.minimum(first + chunk, cols)
    for start in range(first, last, BLOCK):
        c = start + tl.arange(0, BLOCK)
        mask = c < last
        d = tl.where(mask, kw_prologue({args}base + c, c, mask) - shift, 0.0)
        acc += d
        acc2 += d * d
    at = part + row * (3 * SPLIT) + tl.program_id(1)
    tl.store(at, tl.sum(acc, axis=0))
    tl.store(at + SPLIT, tl.sum(acc2, axis=0))
    tl.store(at + 2 * SPLIT, shift)
"""
# The element is loaded first, so that its load does not wait for the statistics'.
_APPLY = """@triton.jit
def kw_gn_apply({args}{affine}part, out, cols, hw, per_group, channels, SPLIT: tl.constexpr, BLOCK: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)  # sample * channels + channel: H * W contiguous elements
    row = plane // per_group  # sample * groups + group
    p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = p < hw
    offs = plane * hw + p
    c = offs - row * cols
    x = kw_prologue({args}offs, c, mask)
    k = tl.arange(0, SPLIT)
    stats = part + row * (3 * SPLIT)
    dmean = tl.sum(tl.load(stats + k), axis=0) / cols
    var = tl.maximum(tl.sum(tl.load(stats + SPLIT + k), axis=0) / cols - dmean * dmean, 0.0)
    mean = tl.load(stats + 2 * SPLIT) + dmean
    rstd = 1.0 / tl.sqrt_rn(var + {eps})
    channel = plane % channels
{scale}    y = kw_epilogue(x * scale + offset, {args}offs, c, mask)
    tl.store(out + offs, y.to(out.dtype.element_ty), mask=mask)
"""


def _splits(rows: int, cols: int) -> tuple[int, ...]:
    """SPLIT values (powers of two), the default first: enough statistics programs to fill an H100 (132 SMs,
    a dozen programs each) while each chunk keeps 16 steps of 2048 elements or more."""
    split = 1
    while rows * split < 2048 and cols // (split * 2) >= 16 * 2048:
        split *= 2
    return tuple(dict.fromkeys((split, split * 4, max(1, split // 4))))


class GroupNormTemplate:
    name = "triton.group_norm"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, Norm) and p.kind == "group" and p.outputs == ("value",) and len(p.shape) >= 2
                and p.dims == len(p.shape) - 1
                and all(w is None or isinstance(w, Weight) for w in (p.weight, p.bias))
                and _valid(analysis, p.prologue, [p.epilogue])
                and all(leaf.layout in ("full", "scalar")
                        for e in (p.prologue, p.epilogue) for leaf in leaves(e or Value())))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Norm)
        rows, cols = p.shape[0] * p.groups, math.prod(p.shape[1:]) // p.groups
        return {"SPLIT": _splits(rows, cols), "BLOCK": (2048, 1024, 4096), "num_warps": (8, 4, 16)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Norm)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue])
        # The channel's weight and bias, with the statistics, as one scale and one offset.
        scale = "rstd * tl.load(gamma + channel).to(tl.float32)" if p.weight is not None else "rstd"
        offset = "tl.load(beta + channel).to(tl.float32) - mean * scale" if p.bias is not None else "-mean * scale"
        affine = [(name, w) for name, w in (("gamma", p.weight), ("beta", p.bias)) if w is not None]
        source = (kernel.helper("kw_prologue", p.prologue) + "\n\n"
                  + kernel.helper("kw_epilogue", p.epilogue if p.epilogue is not None else Value(), with_value=True)
                  + "\n\n" + _STATS.format(args=kernel.args) + "\n\n"
                  + _APPLY.format(args=kernel.args, affine="".join(f"{name}, " for name, _ in affine),
                                  eps=repr(float(p.eps)), scale=f"    scale = {scale}\n    offset = {offset}\n"))
        split, block, warps = int(params["SPLIT"]), int(params["BLOCK"]), int(params["num_warps"])
        # The candidate's kw_rows are the samples, kw_cols a sample's C * H * W elements.
        launch = [f"kw_{name} = self.{w.name}.contiguous()" for name, w in affine] + [
            "kw_hw = math.prod(kw_x.shape[2:])",
            f"kw_group = kw_cols // {p.groups}",
            # Each program's chunk: whole steps of BLOCK, so that only the last chunk has a partial step.
            f"kw_block = min(triton.next_power_of_2(kw_group), {block})",
            f"kw_chunk = triton.cdiv(triton.cdiv(kw_group, {split}), kw_block) * kw_block",
            f"kw_part = torch.empty(kw_rows * {p.groups * 3 * split}, dtype=torch.float32, device=kw_x.device)",
            "kw_out = torch.empty_like(kw_x)",
            f"kw_gn_stats[(kw_rows * {p.groups}, {split})]({{tensors}}kw_part, kw_group, kw_chunk, SPLIT={split}, "
            f"BLOCK=kw_block, num_warps={warps})",
            f"kw_tile = min(triton.next_power_of_2(kw_hw), {block})",
            "kw_gn_apply[(kw_rows * kw_x.shape[1], triton.cdiv(kw_hw, kw_tile))]({tensors}"
            + "".join(f"kw_{name}, " for name, _ in affine)
            + f"kw_part, kw_out, kw_group, kw_hw, kw_x.shape[1] // {p.groups}, kw_x.shape[1], SPLIT={split}, "
            f"BLOCK=kw_tile, num_warps={warps})",
            "return kw_out"]
        what = f"group norm in {p.groups} groups, eps={p.eps}"
        return kernel.candidate(source, launch, _doc(self.name, what, params), p.dims)


TEMPLATES = [GroupNormTemplate()]
