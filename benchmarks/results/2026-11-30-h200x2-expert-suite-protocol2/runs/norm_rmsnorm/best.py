"""RMSNorm as Llama's modeling code writes it (LlamaRMSNorm, eps 1e-5), in fp32:
x * rsqrt(mean(x^2) + eps) * weight, five eager kernels.
Shapes: Llama-3-8B (hidden 4096), 8 sequences of 2048 tokens.
"""
import torch
import torch.nn as nn

batch = 8
seq_len = 2048
hidden = 4096
# eager on H100 ~ 0.6 ms (estimate: 67M fp32 elements = 268 MB; pow, mean, mul, mul move ~7 tensors = 1.9 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "hidden": 1000},
        {"batch": 2, "seq_len": 50, "hidden": 2048},
    ],
}


class Model(nn.Module):
    def __init__(self, hidden, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden).uniform_(0.5, 1.5))  # trained, not ones
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        return self.weight * x.to(dtype)


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden]

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
