"""triton.pointwise: elementwise; strategy=flat, BLOCK=512, num_warps=4."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in0, w0, w1, offs, c, mask):
    t0 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    t1 = tl.load(w0, mask=mask, other=0.0).to(tl.float32)
    t2 = t0 * t1
    t3 = tl.load(w1, mask=mask, other=0.0).to(tl.float32)
    t4 = t2 + t3
    t5 = tl.where(t4 > 0.0, t4, t4 * 0.1)
    t6 = tl.minimum(tl.maximum(t5, (-0.3)), 3.0)
    return t6


@triton.jit
def kw_pointwise(in0, w0, w1, out, n, cols, d1: tl.constexpr, d2: tl.constexpr, d3: tl.constexpr, w0_s0, w0_s1, w0_s2, w0_s3, w1_s0, w1_s1, w1_s2, w1_s3, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    if WIDE:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = offs
    i3 = offs % d3
    rest = offs // d3
    i2 = rest % d2
    rest = rest // d2
    i1 = rest % d1
    i0 = rest // d1
    w0 = w0 + i0 * w0_s0 + i1 * w0_s1 + i2 * w0_s2 + i3 * w0_s3
    w1 = w1 + i0 * w1_s0 + i1 * w1_s1 + i2 * w1_s2 + i3 * w1_s3
    y = kw_prologue(in0, w0, w1, offs, c, mask)
    tl.store(out + offs, y.to(out.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, channels):
        super().__init__()
        # BatchNorm folded into the conv's output: gamma / sqrt(var + eps) and beta - mean * that.
        self.scale = nn.Parameter(torch.empty(channels, 1, 1).uniform_(0.5, 1.5))
        self.shift = nn.Parameter(torch.randn(channels, 1, 1) * 0.5)

    def forward(self, x):
        x = x.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_pad = 4 - kw_x.dim()
        kw_sizes = (1,) * kw_pad + tuple(kw_x.shape)
        kw_w0 = self.scale.expand(kw_x.shape)
        kw_w1 = self.shift.expand(kw_x.shape)
        kw_out = torch.empty_like(kw_x)
        kw_pointwise[(triton.cdiv(kw_x.numel(), 512),)](x, kw_w0, kw_w1, kw_out, kw_x.numel(), kw_cols, kw_sizes[1], kw_sizes[2], kw_sizes[3], *((0,) * kw_pad + kw_w0.stride()), *((0,) * kw_pad + kw_w1.stride()), BLOCK=512, WIDE=kw_x.numel() >= 2**31, num_warps=4)
        return kw_out
