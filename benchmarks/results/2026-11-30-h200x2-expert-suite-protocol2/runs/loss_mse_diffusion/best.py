"""triton.row_reduce: mean over the last 3 dim(s); strategy=looped, BLOCK=8192, num_warps=16."""
import torch
import torch.nn as nn
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in1, in0, offs, c, mask):
    t0 = tl.load(in1 + offs, mask=mask, other=0.0).to(tl.float32)
    t1 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    t2 = t0 - t1
    t3 = t2 * t2
    return t3


@triton.jit
def kw_epilogue(value, in1, in0, offs, c, mask):
    return value


@triton.jit
def kw_row(in1, in0, out, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, cols, BLOCK):
        c = start + tl.arange(0, BLOCK)
        mask = c < cols
        acc += tl.where(mask, kw_prologue(in1, in0, base + c, c, mask), 0.0)
    result = tl.sum(acc, axis=0) / cols
    tl.store(out + row, kw_epilogue(result, in1, in0, row, 0, True).to(out.dtype.element_ty))



class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, eps_pred, noise):
        noise = noise.contiguous()
        eps_pred = eps_pred.contiguous()
        kw_x = noise
        kw_cols = math.prod(kw_x.shape[-3:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty(kw_x.shape[:-3], dtype=kw_x.dtype, device=kw_x.device)
        kw_row[(kw_rows,)](noise, eps_pred, kw_out, kw_cols, BLOCK=min(triton.next_power_of_2(kw_cols), 8192), num_warps=16)
        return kw_out
