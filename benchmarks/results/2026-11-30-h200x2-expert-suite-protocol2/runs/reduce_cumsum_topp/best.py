"""triton.scan: cumsum over the last dim; BLOCK=4096, num_warps=8."""
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
def kw_scan(in0, out, rows, cols, ROWS: tl.constexpr, BLOCK: tl.constexpr, ONE_TILE: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]
    base = row * cols
    lane = tl.arange(0, BLOCK)[None, :] + tl.zeros([ROWS, 1], dtype=tl.int32)
    carry = tl.full([ROWS, 1], 0.0, tl.float32)
    if ONE_TILE:  # the row fits one tile: no loop and no carry
        c = lane
        mask = (row < rows) & (c < cols)
        p = c
        p_mask = mask & (p >= 0) & (p < cols)
        v = tl.where(p_mask, kw_prologue(in0, base + p, p, p_mask), 0.0)
        scanned = tl.cumsum(v, axis=1, reverse=False)
        y = kw_epilogue(carry + scanned, in0, base + c, c, mask)
        tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)
    else:
        tiles = tl.cdiv(cols, BLOCK)
        for i in range(0, tiles):
            c = i * BLOCK + lane
            mask = (row < rows) & (c < cols)
            p = c
            p_mask = mask & (p >= 0) & (p < cols)
            v = tl.where(p_mask, kw_prologue(in0, base + p, p, p_mask), 0.0)
            scanned = tl.cumsum(v, axis=1, reverse=False)
            y = kw_epilogue(carry + scanned, in0, base + c, c, mask)
            tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)
            carry = carry + tl.sum(tl.where(lane == BLOCK - 1, scanned, 0.0), axis=1, keep_dims=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, sorted_probs):
        sorted_probs = sorted_probs.contiguous()
        kw_x = sorted_probs
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_block = min(triton.next_power_of_2(kw_cols), 4096)
        kw_per = 4096 // kw_block
        kw_scan[(triton.cdiv(kw_rows, kw_per),)](sorted_probs, kw_out, kw_rows, kw_cols, ROWS=kw_per, BLOCK=kw_block, ONE_TILE=kw_cols <= kw_block, num_warps=8)
        return kw_out
