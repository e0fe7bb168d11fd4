"""Residual add followed by RMSNorm, in fp32: h = x + residual, returns (rmsnorm(h) * weight, h),
the pre-norm step between a decoder layer's attention and MLP.
Shapes: Mistral-7B (hidden 4096, RMSNorm eps 1e-5), 4 sequences of 4096 tokens.
"""
import torch
import torch.nn as nn

batch = 4
seq_len = 4096
hidden = 4096
# eager on H100 ~ 0.8 ms (estimate: 67M fp32 elements = 268 MB per tensor; add, pow, mean, mul, mul move ~10 tensors = 2.7 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "hidden": 1000},
        {"batch": 2, "seq_len": 50, "hidden": 1024},
    ],
}


class Model(nn.Module):
    def __init__(self, hidden, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden).uniform_(0.5, 1.5))
        self.eps = eps

    def forward(self, x, residual):
        h = x + residual
        variance = h.pow(2).mean(-1, keepdim=True)
        return self.weight * (h * torch.rsqrt(variance + self.eps)), h


def get_inputs():
    return [torch.randn(batch, seq_len, hidden), torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden]
