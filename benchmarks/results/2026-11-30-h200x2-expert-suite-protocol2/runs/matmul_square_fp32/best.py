"""Square fp32 matmul C = A @ B, N = 4096: the size of Llama-2-7B's 4096x4096 attention
projections applied to a 4096-token batch, here as a plain GEMM in full fp32.
"""
import torch
import torch.nn as nn

n = 4096
# eager on H100 ~ 2.8 ms (estimate: 2 * 4096^3 = 137 GFLOP at ~50 TFLOPS fp32, TF32 off by default for matmul)

KERNELWRIGHT = {
    "shape_variants": [
        {"n": 1023},
        {"n": 300},
    ],
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
