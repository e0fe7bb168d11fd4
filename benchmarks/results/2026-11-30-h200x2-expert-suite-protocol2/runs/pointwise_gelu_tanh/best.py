"""triton.pointwise: elementwise; BLOCK=1024, num_warps=4."""
import math
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
    t1 = 0.5 * t0
    t2 = t0 * t0 * t0
    t3 = 0.044715 * t2
    t4 = t0 + t3
    t5 = 0.7978845608028654 * t4
    t6 = 2.0 * tl.sigmoid(2.0 * t5) - 1.0
    t7 = 1.0 + t6
    t8 = t1 * t7
    return t8


@triton.jit
def kw_pointwise(in0, out, n, cols, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    if WIDE:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = offs
    y = kw_prologue(in0, offs, c, mask)
    tl.store(out + offs, y.to(out.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_pointwise[(triton.cdiv(kw_x.numel(), 1024),)](x, kw_out, kw_x.numel(), kw_cols, BLOCK=1024, WIDE=kw_x.numel() >= 2**31, num_warps=4)
        return kw_out
