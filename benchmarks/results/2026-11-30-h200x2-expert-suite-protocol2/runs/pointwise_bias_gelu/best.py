"""triton.pointwise: elementwise; BLOCK=1024, num_warps=4."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in0, w0, offs, c, mask):
    t0 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    t1 = tl.load(w0 + c, mask=mask, other=0.0).to(tl.float32)
    t2 = t0 + t1
    t3 = 0.5 * t2 * (1.0 + tl.erf(t2 * 0.7071067811865476))
    return t3


@triton.jit
def kw_pointwise(in0, w0, out, n, cols, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    if WIDE:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = offs % cols
    y = kw_prologue(in0, w0, offs, c, mask)
    tl.store(out + offs, y.to(out.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, intermediate):
        super().__init__()
        # The bias of BERT's intermediate nn.Linear (same uniform init as nn.Linear's, fan-in 1024).
        self.bias = nn.Parameter(torch.empty(intermediate).uniform_(-1.0 / 32, 1.0 / 32))

    def forward(self, x):
        x = x.contiguous()
        kw_w0 = self.bias.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_pointwise[(triton.cdiv(kw_x.numel(), 1024),)](x, kw_w0, kw_out, kw_x.numel(), kw_cols, BLOCK=1024, WIDE=kw_x.numel() >= 2**31, num_warps=4)
        return kw_out
