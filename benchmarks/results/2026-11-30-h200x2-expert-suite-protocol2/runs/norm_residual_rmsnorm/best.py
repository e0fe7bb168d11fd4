"""triton.norm: rms norm over the last 1 dim(s), eps=1e-05; strategy=single_pass, num_warps=8."""
import torch
import torch.nn as nn
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in0, in1, w0, offs, c, mask):
    t0 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    t1 = tl.load(in1 + offs, mask=mask, other=0.0).to(tl.float32)
    t2 = t0 + t1
    return t2


@triton.jit
def kw_epilogue(value, in0, in1, w0, offs, c, mask):
    t0 = tl.load(w0 + c, mask=mask, other=0.0).to(tl.float32)
    t1 = value * t0
    return t1


@triton.jit
def kw_row(in0, in1, w0, out, res, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
    c = tl.arange(0, BLOCK)
    mask = c < cols
    x = tl.where(mask, kw_prologue(in0, in1, w0, base + c, c, mask), 0.0)
    tl.store(res + base + c, x.to(res.dtype.element_ty), mask=mask)
    rstd = 1.0 / tl.sqrt_rn(tl.sum(x * x, axis=0) / cols + 1e-05)
    y = x * rstd
    y = kw_epilogue(y, in0, in1, w0, base + c, c, mask)
    tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)



class ModelNew(nn.Module):
    def __init__(self, hidden, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden).uniform_(0.5, 1.5))
        self.eps = eps

    def forward(self, x, residual):
        x = x.contiguous()
        residual = residual.contiguous()
        kw_w0 = self.weight.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_res = torch.empty_like(kw_x)
        kw_row[(kw_rows,)](x, residual, kw_w0, kw_out, kw_res, kw_cols, BLOCK=triton.next_power_of_2(kw_cols), num_warps=8)
        return kw_out, kw_res
