"""Triton template for a reduction over dims that are not the last (ColumnReduce): x.sum(dim=1) of [B, T, H].

The prologue's tensor is viewed as (outer, reduced, inner), and each output element reduces one column of
an outer index's (reduced, inner) matrix. A program owns BLOCK_I adjacent columns of one outer index and
walks down the rows: each step loads a [BLOCK_R, BLOCK_I] tile whose rows are contiguous runs of BLOCK_I
elements (whole cache lines, unlike a walk down one column at stride `inner`) and combines it into a tile
of fp32 accumulators elementwise; the BLOCK_R values per column are combined once, after the loop. The
tile holds BLOCK elements: min(BLOCK_I, inner rounded up to a power of two) columns by BLOCK // that many
rows, so few columns (inner = 3) still fill a program.

Few columns over many rows (x.sum(0) of a tall matrix) would leave most of the GPU idle with one program
per column block, so SPLIT > 1 splits the rows too: SPLIT programs per column block each reduce a range of
rows into an fp32 buffer, and a second kernel combines the SPLIT partial values in a fixed order
(deterministic, unlike atomics) and applies the epilogue.

Parameters: BLOCK (elements per step), BLOCK_I (at most this many columns per program), SPLIT (programs
along the rows), num_warps.
"""

from __future__ import annotations

import math
from typing import Any

from kernelwright.generate.expert.patterns import COLUMN_REDUCTIONS, Analysis, ColumnReduce, Value, leaves
from kernelwright.generate.expert.templates.triton import _doc, _Kernel, _valid

# kind -> (identity, combining two values, combining a tile's rows).
_KINDS = {
    "sum": ("0.0", "{0} + {1}", "tl.sum"),
    "mean": ("0.0", "{0} + {1}", "tl.sum"),
    "max": ('-float("inf")', "tl.maximum({0}, {1})", "tl.max"),
    "min": ('float("inf")', "tl.minimum({0}, {1})", "tl.min"),
}

# Grid: (outer index x column block, SPLIT). Rows [first, last) of the column block are this program's.
# The epilogue reads numbers and scalars only: the column stands for both its index arguments.
_COLUMN = """@triton.jit
def kw_column({args}out, reduced, inner, per, columns, BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr):
    blocks = tl.cdiv(inner, BLOCK_I)
    outer = (tl.program_id(0) // blocks).to(tl.int64)
    i = (tl.program_id(0) % blocks) * BLOCK_I + tl.arange(0, BLOCK_I)
    first = tl.program_id(1) * per
    last = tl.minimum(first + per, reduced)
    c = tl.broadcast_to(i[None, :], [BLOCK_R, BLOCK_I])  # each element's column: row leaves are read there
    acc = tl.full([BLOCK_R, BLOCK_I], {identity}, tl.float32)
    for start in range(first, last, BLOCK_R):
        r = start + tl.arange(0, BLOCK_R)
        mask = (r < last)[:, None] & (c < inner)
        offs = (outer * reduced + r[:, None]) * inner + c
        acc = {combine}
    result = {across}(acc, axis=0)
    column = outer * inner + i
    done = i < inner
{finish}"""
# SPLIT == 1: the program has the whole column and finishes it.
_FINISH = """    y = kw_epilogue({value}, {args}column, column, done)
    tl.store(out + column, y.to(out.dtype.element_ty), mask=done)
"""
# SPLIT > 1: `out` is the [SPLIT, columns] fp32 buffer of partial values.
_PARTIAL = """    tl.store(out + tl.program_id(1).to(tl.int64) * columns + column, result, mask=done)
"""
_COMBINE_PARTS = """@triton.jit
def kw_column_combine({args}part, out, reduced, columns, SPLIT: tl.constexpr, BLOCK: tl.constexpr):
    column = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    done = column < columns
    result = tl.load(part + column, mask=done, other=0.0)
    for s in range(1, SPLIT):
        result = {combine}
    y = kw_epilogue({value}, {args}column, column, done)
    tl.store(out + column, y.to(out.dtype.element_ty), mask=done)
"""


def _sizes(shape: tuple[int, ...], start: int, dims: int) -> tuple[int, int, int]:
    return math.prod(shape[:start]), math.prod(shape[start:start + dims]), math.prod(shape[start + dims:])


def _splits(p: ColumnReduce) -> tuple[int, ...]:
    """SPLIT values, the default first: rows split in 4, 16, ... while the column blocks alone make fewer
    programs than fill an H100 (132 SMs, several programs each) and each split keeps 128 rows or more."""
    outer, reduced, inner = _sizes(p.shape, p.start, p.dims)
    programs = outer * math.ceil(inner / 128)
    split = 1
    while programs * split < 1024 and reduced // (split * 4) >= 128:
        split *= 4
    return tuple(dict.fromkeys((split, 1, 4, 16)))


class ColumnReduceTemplate:
    name = "triton.column_reduce"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, ColumnReduce) and p.kind in COLUMN_REDUCTIONS and p.inner >= 1
                and all(leaf.layout == "scalar" for leaf in leaves(p.epilogue or Value()))
                and _valid(analysis, p.prologue, [p.epilogue]))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, ColumnReduce)
        # A tile of 4096 elements: 32 per thread of 4 warps, so each step has 8 vector loads in flight per thread.
        return {"BLOCK": (4096, 2048, 8192), "BLOCK_I": (128, 64, 256), "SPLIT": _splits(p), "num_warps": (4, 8)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, ColumnReduce)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue])
        identity, combine, across = _KINDS[p.kind]
        value = "result / reduced" if p.kind == "mean" else "result"
        split, warps = int(params["SPLIT"]), int(params["num_warps"])
        finish = (_FINISH if split == 1 else _PARTIAL).format(value=value, args=kernel.args)
        step = combine.format("acc", f"tl.where(mask, kw_prologue({kernel.args}offs, c, mask), {identity})")
        source = (kernel.helper("kw_prologue", p.prologue) + "\n\n"
                  + kernel.helper("kw_epilogue", p.epilogue if p.epilogue is not None else Value(), with_value=True)
                  + "\n\n" + _COLUMN.format(args=kernel.args, identity=identity, combine=step, across=across,
                                           finish=finish))
        start, end = p.start, p.start + p.dims
        shape = f"kw_x.shape[:{start}] + " + (f"(1,) * {p.dims} + " if p.keepdim else "") + f"kw_x.shape[{end}:]"
        # kw_cols (the candidate's) is the inner size, kw_rows = outer x reduced.
        launch = [f"kw_reduced = math.prod(kw_x.shape[{start}:{end}])",
                  f"kw_out = torch.empty({shape}, dtype=kw_x.dtype, device=kw_x.device)",
                  f"kw_bi = min(triton.next_power_of_2(kw_cols), {int(params['BLOCK_I'])})",
                  f"kw_br = min({int(params['BLOCK'])} // kw_bi, triton.next_power_of_2(kw_reduced))",
                  # Each split's rows: whole steps of kw_br, so that only the last split has a partial step.
                  f"kw_per = triton.cdiv(triton.cdiv(kw_reduced, {split}), kw_br) * kw_br",
                  "kw_columns = kw_out.numel()",
                  f"kw_grid = (kw_rows // max(kw_reduced, 1) * triton.cdiv(kw_cols, kw_bi), {split})"]
        launch_args = "kw_reduced, kw_cols, kw_per, kw_columns, BLOCK_R=kw_br, BLOCK_I=kw_bi"
        if split == 1:
            launch.append(f"kw_column[kw_grid]({{tensors}}kw_out, {launch_args}, num_warps={warps})")
        else:
            source += "\n\n" + _COMBINE_PARTS.format(
                args=kernel.args, combine=combine.format("result", "tl.load(part + s * columns + column, "
                                                                   "mask=done, other=0.0)"), value=value)
            launch += [f"kw_part = torch.empty(({split}, kw_columns), dtype=torch.float32, device=kw_x.device)",
                       f"kw_column[kw_grid]({{tensors}}kw_part, {launch_args}, num_warps={warps})",
                       "kw_column_combine[(triton.cdiv(kw_columns, 1024),)]({tensors}kw_part, kw_out, kw_reduced, "
                       f"kw_columns, SPLIT={split}, BLOCK=1024, num_warps=4)"]
        launch.append("return kw_out")
        what = f"{p.kind} over dims {list(range(start, end))} of a {len(p.shape)}-D tensor"
        return kernel.candidate(source, launch, _doc(self.name, what, params), p.inner)


TEMPLATES = [ColumnReduceTemplate()]
