"""BERT's output sub-block (BertOutput): LayerNorm(dense(h) + input), dense 3072 -> 768 with bias,
LayerNorm eps 1e-12; fp32, dropout off at inference.
Shapes: BERT-base (hidden 768, intermediate 3072), 32 sequences of 512 tokens.
"""
import torch
import torch.nn as nn

batch = 32
seq_len = 512
hidden = 768
intermediate = 3072
# eager on H100 ~ 1.7 ms (estimate: 2 * 16384 * 3072 * 768 = 77 GFLOP at ~50 TFLOPS fp32; add + LayerNorm move 0.25 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "hidden": 1000, "intermediate": 2500},
        {"batch": 1, "seq_len": 64, "hidden": 256, "intermediate": 1024},
    ],
}


class Model(nn.Module):
    def __init__(self, hidden, intermediate):
        super().__init__()
        self.dense = nn.Linear(intermediate, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        with torch.no_grad():
            self.LayerNorm.weight.uniform_(0.5, 1.5)
            self.LayerNorm.bias.normal_(0.0, 0.2)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


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
