"""Log-softmax over the vocabulary (token log-probabilities for scoring or RL).
Shapes: GPT-2 vocabulary (50257 tokens), 4 sequences of 1024 tokens.
"""
import torch
import torch.nn as nn

batch = 4
seq_len = 1024
vocab = 50257
# eager on H100 ~ 0.9 ms (estimate: 206M fp32 elements = 824 MB; max, sum and write passes move ~4 tensors = 3.3 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 33, "vocab": 32001},
        {"batch": 1, "seq_len": 5, "vocab": 50257},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits):
        return torch.log_softmax(logits, dim=-1)


def get_inputs():
    return [torch.randn(batch, seq_len, vocab) * 4.0]


def get_init_inputs():
    return []


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
