"""triton.scan: reverse cumsum over the last dim; reverse_by=subtract, BLOCK=1024, num_warps=2."""
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
        total = tl.sum(v, axis=1, keep_dims=True)
        scanned = total - tl.cumsum(v, axis=1) + v
        y = kw_epilogue(carry + scanned, in0, base + c, c, mask)
        tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)
    else:
        tiles = tl.cdiv(cols, BLOCK)
        for i in range(0, tiles):
            c = (tiles - 1 - i) * BLOCK + lane
            mask = (row < rows) & (c < cols)
            p = c
            p_mask = mask & (p >= 0) & (p < cols)
            v = tl.where(p_mask, kw_prologue(in0, base + p, p, p_mask), 0.0)
            total = tl.sum(v, axis=1, keep_dims=True)
            scanned = total - tl.cumsum(v, axis=1) + v
            y = kw_epilogue(carry + scanned, in0, base + c, c, mask)
            tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)
            carry = carry + total


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, rewards):
        rewards = rewards.contiguous()
        kw_x = rewards
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_block = min(triton.next_power_of_2(kw_cols), 1024)
        kw_per = 1024 // kw_block
        kw_scan[(triton.cdiv(kw_rows, kw_per),)](rewards, kw_out, kw_rows, kw_cols, ROWS=kw_per, BLOCK=kw_block, ONE_TILE=kw_cols <= kw_block, num_warps=2)
        return kw_out
