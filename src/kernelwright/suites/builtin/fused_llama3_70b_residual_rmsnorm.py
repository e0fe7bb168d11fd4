"""Residual add + RMSNorm in bf16 as Llama's code runs it: h = x + residual, then
weight * (h.float() * rsqrt(mean(h^2) + eps)).to(bf16); returns (normed, h).
Shapes: Llama-3-70B (hidden 8192, eps 1e-5), 4 sequences of 2048 tokens.
"""
import torch
import torch.nn as nn

batch = 4
seq_len = 2048
hidden = 8192
# eager on H100 ~ 1 ms (estimate: 67M elements = 134 MB bf16 / 268 MB fp32; add, upcast, pow, mean, mul, downcast, mul = 3.3 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "hidden": 1000},
        {"batch": 1, "seq_len": 100, "hidden": 1024},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden).uniform_(0.5, 1.5))  # trained, not ones
        self.eps = eps

    def forward(self, x, residual):
        h = x + residual
        hf = h.to(torch.float32)
        variance = hf.pow(2).mean(-1, keepdim=True)
        hf = hf * torch.rsqrt(variance + self.eps)
        return self.weight * hf.to(h.dtype), h


def get_inputs():
    return [torch.randn(batch, seq_len, hidden), torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden]
