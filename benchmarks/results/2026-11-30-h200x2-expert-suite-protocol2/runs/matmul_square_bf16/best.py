"""Square bf16 matmul C = A @ B, N = 8192: the size of Llama-3-70B's 8192x8192 attention
output projection applied to an 8192-token batch.
"""
import torch
import torch.nn as nn

n = 8192
# eager on H100 ~ 1.7 ms (estimate: 2 * 8192^3 = 1.1 TFLOP at ~650 TFLOPS bf16 tensor cores)

KERNELWRIGHT = {
    "shape_variants": [
        {"n": 1000},
        {"n": 300},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.matmul(a, b)


def get_inputs():
    return [torch.randn(n, n), torch.randn(n, n)]


def get_init_inputs():
    return []


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
