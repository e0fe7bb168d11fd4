"""Greedy decoding: argmax of next-token logits over the vocabulary (int64 indices).
Shapes: Llama-3-8B vocabulary (128256 tokens), 3072 positions.
"""
import torch
import torch.nn as nn

tokens = 3072
vocab = 128256
# eager on H100 ~ 0.5 ms (estimate: one kernel reads 394M fp32 elements = 1.6 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"tokens": 100, "vocab": 32001},
        {"tokens": 2, "vocab": 50257},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits):
        return torch.argmax(logits, dim=-1)


def get_inputs():
    return [torch.randn(tokens, vocab) * 4.0]


def get_init_inputs():
    return []
