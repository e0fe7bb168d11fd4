"""triton.norm: layer norm over the last 2 dim(s), eps=1e-05; strategy=looped, BLOCK=8192, num_warps=16."""
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
    c = tl.arange(0, BLOCK)
    mask = c < 1
    shift = tl.sum(tl.where(mask, kw_prologue(in0, base + c, c, mask), 0.0), axis=0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, cols, BLOCK):
        c = start + tl.arange(0, BLOCK)
        mask = c < cols
        x = tl.where(mask, kw_prologue(in0, base + c, c, mask), 0.0)
    
        d = tl.where(mask, x - shift, 0.0)
        acc += d
        acc2 += d * d
    dmean = tl.sum(acc, axis=0) / cols
    mean = shift + dmean
    var = tl.maximum(tl.sum(acc2, axis=0) / cols - dmean * dmean, 0.0)
    rstd = 1.0 / tl.sqrt_rn(var + 1e-05)
    last = (cols - 1) // BLOCK * BLOCK
    for back in range(0, cols, BLOCK):
        start = last - back
        c = start + tl.arange(0, BLOCK)
        mask = c < cols
        y = (kw_prologue(in0, base + c, c, mask) - mean) * rstd
        y = kw_epilogue(y, in0, base + c, c, mask)
        tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)



class ModelNew(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)

    def forward(self, x):
        x = x.contiguous()
        kw_x = x
        kw_cols = math.prod(kw_x.shape[-2:]) if kw_x.dim() else 1
        kw_rows = kw_x.numel() // max(kw_cols, 1)
        kw_out = torch.empty_like(kw_x)
        kw_row[(kw_rows,)](x, kw_out, kw_cols, BLOCK=min(triton.next_power_of_2(kw_cols), 8192), num_warps=16)
        return kw_out
