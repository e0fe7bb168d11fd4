"""adaLN-Zero modulation and gated residual of a DiT block: r + gate * (x * (1 + scale) + shift),
where shift, scale and gate are per-sample vectors broadcast over the tokens.
Shapes: DiT-XL/2 (hidden 1152, 256 tokens of a 32x32 latent), batch 256.
"""
import torch
import torch.nn as nn

batch = 256
tokens = 256
hidden = 1152
# eager on H100 ~ 0.8 ms (estimate: 75.5M fp32 elements = 302 MB per tensor; 5 kernels move 9 tensors = 2.7 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "tokens": 1023, "hidden": 1000},
        {"batch": 3, "tokens": 37, "hidden": 1000},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x, r, shift, scale, gate):
        y = x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
        return r + gate.unsqueeze(1) * y


def get_inputs():
    return [
        torch.randn(batch, tokens, hidden),
        torch.randn(batch, tokens, hidden),
        torch.randn(batch, hidden),
        torch.randn(batch, hidden),
        torch.randn(batch, hidden),
    ]


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
