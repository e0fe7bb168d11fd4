"""Log-sum-exp over the vocabulary: the log-normalizer of a language model's softmax.
Shapes: Llama-2-7B LM head output (vocabulary 32000), 4096 tokens.
"""
import torch
import torch.nn as nn

tokens = 4096
vocab = 32000
# eager on H100 ~ 0.95 ms (estimate: 131M fp32 elements = 524 MB; amax, sub, exp_, sum move 6 tensors = 3.1 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"tokens": 1000, "vocab": 32001},
        {"tokens": 3, "vocab": 50257},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits):
        return torch.logsumexp(logits, dim=-1)


def get_inputs():
    # Peaked rows, as trained models' logits are: the maximum term matters.
    return [torch.randn(tokens, vocab) * 4.0]


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
