"""triton.row_reduce: max over the last 1 dim(s); strategy=single_pass, num_warps=4."""
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
    acc = tl.full([BLOCK], -float("inf"), tl.float32)
    c = tl.arange(0, BLOCK)
    mask = c < cols
    acc = tl.maximum(acc, tl.where(mask, kw_prologue(in0, base + c, c, mask), -float("inf")))
    result = tl.max(acc, axis=0)
    tl.store(out + row, kw_epilogue(result, in0, row, 0, True).to(out.dtype.element_ty))



class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty(kw_x.shape[:-1], dtype=kw_x.dtype, device=kw_x.device)
        kw_row[(kw_rows,)](x, kw_out, kw_cols, BLOCK=triton.next_power_of_2(kw_cols), num_warps=4)
        return kw_out
