"""Sum of hidden states over the sequence dimension (the numerator of mean pooling for
sentence embeddings): a strided reduction over dim 1 of (batch, seq, hidden).
Shapes: Llama-3-8B hidden states (hidden 4096), 48 sequences of 2048 tokens.
"""
import torch
import torch.nn as nn

batch = 48
seq_len = 2048
hidden = 4096
# eager on H100 ~ 0.5 ms (estimate: one kernel reads 403M fp32 elements = 1.6 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 1000, "hidden": 777},
        {"batch": 2, "seq_len": 97, "hidden": 1000},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.sum(dim=1)


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return []


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
