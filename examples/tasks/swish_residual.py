"""SiLU with a residual add, y = x * sigmoid(x) + r, as in a transformer block's tail.

Eager PyTorch runs three kernels (sigmoid, mul, add) and moves 8 tensors' worth
of bytes; one fused kernel moves 3 (read x and r, write y).
"""
import torch
import torch.nn as nn

rows = 8192
cols = 8192

KERNELWRIGHT = {"shape_variants": [{"rows": 1000, "cols": 3001}, {"rows": 1, "cols": 5}]}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, r):
        return x * torch.sigmoid(x) + r


def get_inputs():
    return [torch.randn(rows, cols), torch.randn(rows, cols)]


def get_init_inputs():
    return []
