"""triton.column_reduce: sum over dims [1] of a 3-D tensor; BLOCK=4096, BLOCK_I=128, SPLIT=1, num_warps=4."""
import torch
import torch.nn as nn
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in0, offs, c, mask):
    t0 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    return t0


@triton.jit
def kw_epilogue(value, in0, offs, c, mask):
    return value


@triton.jit
def kw_column(in0, out, reduced, inner, per, columns, BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr):
    blocks = tl.cdiv(inner, BLOCK_I)
    outer = (tl.program_id(0) // blocks).to(tl.int64)
    i = (tl.program_id(0) % blocks) * BLOCK_I + tl.arange(0, BLOCK_I)
    first = tl.program_id(1) * per
    last = tl.minimum(first + per, reduced)
    c = tl.broadcast_to(i[None, :], [BLOCK_R, BLOCK_I])  # each element's column: row leaves are read there
    acc = tl.full([BLOCK_R, BLOCK_I], 0.0, tl.float32)
    for start in range(first, last, BLOCK_R):
        r = start + tl.arange(0, BLOCK_R)
        mask = (r < last)[:, None] & (c < inner)
        offs = (outer * reduced + r[:, None]) * inner + c
        acc = acc + tl.where(mask, kw_prologue(in0, offs, c, mask), 0.0)
    result = tl.sum(acc, axis=0)
    column = outer * inner + i
    done = i < inner
    y = kw_epilogue(result, in0, column, column, done)
    tl.store(out + column, y.to(out.dtype.element_ty), mask=done)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_reduced = math.prod(kw_x.shape[1:2])
        kw_out = torch.empty(kw_x.shape[:1] + kw_x.shape[2:], dtype=kw_x.dtype, device=kw_x.device)
        kw_bi = min(triton.next_power_of_2(kw_cols), 128)
        kw_br = min(4096 // kw_bi, triton.next_power_of_2(kw_reduced))
        kw_per = triton.cdiv(triton.cdiv(kw_reduced, 1), kw_br) * kw_br
        kw_columns = kw_out.numel()
        kw_grid = (kw_rows // max(kw_reduced, 1) * triton.cdiv(kw_cols, kw_bi), 1)
        kw_column[kw_grid](x, kw_out, kw_reduced, kw_cols, kw_per, kw_columns, BLOCK_R=kw_br, BLOCK_I=kw_bi, num_warps=4)
        return kw_out
