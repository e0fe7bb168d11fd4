"""Fused SiLU + residual in Triton: one pass, 16-byte vector loads."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def swish_residual_kernel(x_ptr, r_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    r = tl.load(r_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, x * tl.sigmoid(x) + r, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, r):
        x = x.contiguous()
        r = r.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        swish_residual_kernel[(triton.cdiv(n, 4096),)](x, r, y, n, BLOCK=4096, num_warps=8)
        return y
