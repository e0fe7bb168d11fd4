"""SiLU, y = x * sigmoid(x), the gate activation of a SwiGLU MLP.
Shapes: Llama-3-8B gate projection output (intermediate 14336) for 16384 tokens.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 16384
intermediate = 14336
# eager on H100 ~ 0.6 ms (estimate: one kernel reads and writes 235M fp32 elements = 1.9 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"tokens": 1000, "intermediate": 3001},
        {"tokens": 37, "intermediate": 2000},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return F.silu(x)


def get_inputs():
    return [torch.randn(tokens, intermediate)]


def get_init_inputs():
    return []

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
