"""triton.scan: exclusive cumprod over the last dim; BLOCK=1024, num_warps=4."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in0, offs, c, mask):
    t0 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    t1 = 1.0 - t0
    t2 = t1 + 1e-10
    return t2


@triton.jit
def kw_epilogue(value, in0, offs, c, mask):
    t0 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    t1 = t0 * value
    return t1


@triton.jit
def kw_scan(in0, out, rows, cols, ROWS: tl.constexpr, BLOCK: tl.constexpr, ONE_TILE: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]
    base = row * cols
    lane = tl.arange(0, BLOCK)[None, :] + tl.zeros([ROWS, 1], dtype=tl.int32)
    carry = tl.full([ROWS, 1], 1.0, tl.float32)
    if ONE_TILE:  # the row fits one tile: no loop and no carry
        c = lane
        mask = (row < rows) & (c < cols)
        p = c - 1
        p_mask = mask & (p >= 0) & (p < cols)
        v = tl.where(p_mask, kw_prologue(in0, base + p, p, p_mask), 1.0)
        scanned = tl.cumprod(v, axis=1, reverse=False)
        y = kw_epilogue(carry * scanned, in0, base + c, c, mask)
        tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)
    else:
        tiles = tl.cdiv(cols, BLOCK)
        for i in range(0, tiles):
            c = i * BLOCK + lane
            mask = (row < rows) & (c < cols)
            p = c - 1
            p_mask = mask & (p >= 0) & (p < cols)
            v = tl.where(p_mask, kw_prologue(in0, base + p, p, p_mask), 1.0)
            scanned = tl.cumprod(v, axis=1, reverse=False)
            y = kw_epilogue(carry * scanned, in0, base + c, c, mask)
            tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)
            carry = carry * tl.sum(tl.where(lane == BLOCK - 1, scanned, 0.0), axis=1, keep_dims=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, alpha):
        alpha = alpha.contiguous()
        kw_x = alpha
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_block = min(triton.next_power_of_2(kw_cols), 1024)
        kw_per = 1024 // kw_block
        kw_scan[(triton.cdiv(kw_rows, kw_per),)](alpha, kw_out, kw_rows, kw_cols, ROWS=kw_per, BLOCK=kw_block, ONE_TILE=kw_cols <= kw_block, num_warps=4)
        return kw_out
