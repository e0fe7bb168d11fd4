"""GEMM with a residual-add epilogue: residual + down_proj(h), the end of a Llama MLP block.
Shapes: Llama-3-8B (intermediate 14336 -> hidden 4096), 2 sequences of 2048 tokens.
"""
import torch
import torch.nn as nn

batch = 2
seq_len = 2048
hidden = 4096
intermediate = 14336
# eager on H100 ~ 0.8 ms (estimate: 2 * 4096 * 14336 * 4096 = 481 GFLOP at ~650 TFLOPS bf16, plus the add over 34 MB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 1, "seq_len": 1000, "hidden": 1000, "intermediate": 3001},
        {"batch": 1, "seq_len": 50, "hidden": 256, "intermediate": 1000},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, intermediate):
        super().__init__()
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, h, residual):
        return residual + self.down_proj(h)


def get_inputs():
    return [torch.randn(batch, seq_len, intermediate), torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden, intermediate]

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
