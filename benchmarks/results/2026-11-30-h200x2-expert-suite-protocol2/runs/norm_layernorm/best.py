"""triton.norm: layer norm over the last 1 dim(s), eps=1e-05; strategy=single_pass, num_warps=4."""
import torch
import torch.nn as nn
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in0, w0, w1, offs, c, mask):
    t0 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    return t0


@triton.jit
def kw_epilogue(value, in0, w0, w1, offs, c, mask):
    t0 = tl.load(w0 + c, mask=mask, other=0.0).to(tl.float32)
    t1 = value * t0
    t2 = tl.load(w1 + c, mask=mask, other=0.0).to(tl.float32)
    t3 = t1 + t2
    return t3


@triton.jit
def kw_row(in0, w0, w1, out, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
    c = tl.arange(0, BLOCK)
    mask = c < cols
    x = tl.where(mask, kw_prologue(in0, w0, w1, base + c, c, mask), 0.0)

    mean = tl.sum(x, axis=0) / cols
    d = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt_rn(tl.sum(d * d, axis=0) / cols + 1e-05)
    y = d * rstd
    y = kw_epilogue(y, in0, w0, w1, base + c, c, mask)
    tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)



class ModelNew(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=1e-5)
        with torch.no_grad():  # trained values, not the identity nn.LayerNorm starts from
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_(0.0, 0.2)

    def forward(self, x):
        x = x.contiguous()
        kw_w0 = self.norm.weight.contiguous()
        kw_w1 = self.norm.bias.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_row[(kw_rows,)](x, kw_w0, kw_w1, kw_out, kw_cols, BLOCK=triton.next_power_of_2(kw_cols), num_warps=4)
        return kw_out
