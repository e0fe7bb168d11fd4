"""Llama SwiGLU MLP: down_proj(silu(gate_proj(x)) * up_proj(x)), three bias-free nn.Linear, bf16.
Shapes: Llama-3-8B MLP (hidden 4096, intermediate 14336), 2048 tokens.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch = 1
seq_len = 2048
hidden = 4096
intermediate = 14336
# eager on H100 ~ 1.2 ms (estimate: 3 GEMMs of 2 * 2048 * 4096 * 14336 = 722 GFLOP at ~650 TFLOPS bf16; silu and mul move 0.3 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 1, "seq_len": 333, "hidden": 1000, "intermediate": 2750},
        {"batch": 1, "seq_len": 64, "hidden": 256, "intermediate": 704},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, intermediate):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


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
