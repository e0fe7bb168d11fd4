"""GPT-2 MLP: c_proj(gelu_tanh(c_fc(x))), both projections with bias, bf16.
Shapes: GPT-2 XL (hidden 1600, intermediate 6400), 16 sequences of 1024 tokens.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch = 16
seq_len = 1024
hidden = 1600
intermediate = 6400
# eager on H100 ~ 1.1 ms (estimate: 2 GEMMs of 2 * 16384 * 1600 * 6400 = 671 GFLOP at ~650 TFLOPS bf16; gelu moves 0.4 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "hidden": 1000, "intermediate": 4000},
        {"batch": 1, "seq_len": 64, "hidden": 320, "intermediate": 1280},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, intermediate):
        super().__init__()
        self.c_fc = nn.Linear(hidden, intermediate)
        self.c_proj = nn.Linear(intermediate, hidden)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden, intermediate]


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
