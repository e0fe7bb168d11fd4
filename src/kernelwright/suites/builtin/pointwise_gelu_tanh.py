"""GELU, tanh approximation, written out as GPT-2's gelu_new (HF NewGELUActivation):
0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), eight eager kernels for one pointwise op.
Shapes: GPT-2 XL MLP activations (intermediate 6400), 16 sequences of 1024 tokens.
"""
import math

import torch
import torch.nn as nn

batch = 16
seq_len = 1024
intermediate = 6400
# eager on H100 ~ 2.5 ms (estimate: 105M fp32 elements = 420 MB per tensor; 8 kernels move ~18 tensors = 7.5 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "intermediate": 1001},
        {"batch": 2, "seq_len": 37, "intermediate": 1600},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def get_inputs():
    return [torch.randn(batch, seq_len, intermediate)]


def get_init_inputs():
    return []
