"""Matrix-vector product: the LM head (nn.Linear without bias) for one decoded token,
memory-bound on reading the weight. Shapes: Gemma-7B (hidden 3072, vocabulary 256000), batch 1.
"""
import torch
import torch.nn as nn

batch = 1
hidden = 3072
vocab = 256000
# eager on H100 ~ 0.5 ms (estimate: reads 786M bf16 weights = 1.57 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "hidden": 1000, "vocab": 50257},
        {"batch": 1, "hidden": 256, "vocab": 1000},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, vocab):
        super().__init__()
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, x):
        return self.lm_head(x)


def get_inputs():
    return [torch.randn(batch, hidden)]


def get_init_inputs():
    return [hidden, vocab]

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
