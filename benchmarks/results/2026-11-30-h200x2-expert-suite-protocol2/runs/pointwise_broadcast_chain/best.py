"""triton.pointwise: elementwise; strategy=flat, BLOCK=1024, num_warps=4."""
import torch
import torch.nn as nn
import math

import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_prologue(in1, in4, in0, in3, in2, offs, c, mask):
    t0 = tl.load(in1 + offs, mask=mask, other=0.0).to(tl.float32)
    t1 = in4
    t2 = tl.load(in0 + offs, mask=mask, other=0.0).to(tl.float32)
    t3 = in3
    t4 = 1.0 + t3
    t5 = t2 * t4
    t6 = in2
    t7 = t5 + t6
    t8 = t1 * t7
    t9 = t0 + t8
    return t9


@triton.jit
def kw_pointwise(in1, in4, in0, in3, in2, out, n, cols, d1: tl.constexpr, d2: tl.constexpr, d3: tl.constexpr, in4_s0, in4_s1, in4_s2, in4_s3, in3_s0, in3_s1, in3_s2, in3_s3, in2_s0, in2_s1, in2_s2, in2_s3, BLOCK: tl.constexpr, WIDE: tl.constexpr):
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
    in4 = tl.load(in4 + i0 * in4_s0 + i1 * in4_s1 + i2 * in4_s2 + i3 * in4_s3, mask=mask, other=0.0).to(tl.float32)
    in3 = tl.load(in3 + i0 * in3_s0 + i1 * in3_s1 + i2 * in3_s2 + i3 * in3_s3, mask=mask, other=0.0).to(tl.float32)
    in2 = tl.load(in2 + i0 * in2_s0 + i1 * in2_s1 + i2 * in2_s2 + i3 * in2_s3, mask=mask, other=0.0).to(tl.float32)
    y = kw_prologue(in1, in4, in0, in3, in2, offs, c, mask)
    tl.store(out + offs, y.to(out.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, r, shift, scale, gate):
        r = r.contiguous()
        x = x.contiguous()
        kw_x = r
        kw_cols = math.prod(kw_x.shape[-1:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_pad = 4 - kw_x.dim()
        kw_sizes = (1,) * kw_pad + tuple(kw_x.shape)
        kw_in4 = gate.unsqueeze(1).expand(kw_x.shape)
        kw_in3 = scale.unsqueeze(1).expand(kw_x.shape)
        kw_in2 = shift.unsqueeze(1).expand(kw_x.shape)
        kw_out = torch.empty_like(kw_x)
        kw_pointwise[(triton.cdiv(kw_x.numel(), 1024),)](r, kw_in4, x, kw_in3, kw_in2, kw_out, kw_x.numel(), kw_cols, kw_sizes[1], kw_sizes[2], kw_sizes[3], *((0,) * kw_pad + kw_in4.stride()), *((0,) * kw_pad + kw_in3.stride()), *((0,) * kw_pad + kw_in2.stride()), BLOCK=1024, WIDE=kw_x.numel() >= 2**31, num_warps=4)
        return kw_out
