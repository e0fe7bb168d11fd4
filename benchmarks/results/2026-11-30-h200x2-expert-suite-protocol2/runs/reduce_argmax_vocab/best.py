"""triton.row_reduce: argmax over the last 1 dim(s); strategy=looped, BLOCK=4096, num_warps=16."""
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
def kw_row(in0, out, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
    best = tl.full([BLOCK], -float("inf"), tl.float32)
    index = tl.zeros([BLOCK], dtype=tl.int32)
    for start in range(0, cols, BLOCK):
        c = start + tl.arange(0, BLOCK)
        mask = c < cols
        v = tl.where(mask, kw_prologue(in0, base + c, c, mask), -float("inf"))
        take = v > best
        best = tl.where(take, v, best)
        index = tl.where(take, c, index)
    result = tl.min(tl.where(best == tl.max(best, axis=0), index, 2147483647), axis=0).to(tl.int64)
    tl.store(out + row, kw_epilogue(result, in0, row, 0, True).to(out.dtype.element_ty))



class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits):
        logits = logits.contiguous()
        kw_x = logits
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty(kw_x.shape[:-1], dtype=torch.int64, device=kw_x.device)
        kw_row[(kw_rows,)](logits, kw_out, kw_cols, BLOCK=min(triton.next_power_of_2(kw_cols), 4096), num_warps=16)
        return kw_out
