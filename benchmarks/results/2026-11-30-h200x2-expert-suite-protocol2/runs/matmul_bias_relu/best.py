"""GEMM with a bias + ReLU epilogue: fc1 of OPT's MLP, relu(x @ W^T + b) (nn.Linear then ReLU).
Shapes: OPT-6.7B (hidden 4096, ffn 16384), 2 sequences of 2048 tokens.
"""
import torch
import torch.nn as nn

batch = 2
seq_len = 2048
hidden = 4096
ffn = 16384
# eager on H100 ~ 0.9 ms (estimate: 2 * 4096 * 4096 * 16384 = 550 GFLOP at ~650 TFLOPS bf16, plus ReLU over 134 MB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 1, "seq_len": 1000, "hidden": 1000, "ffn": 3001},
        {"batch": 1, "seq_len": 64, "hidden": 256, "ffn": 1000},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, ffn):
        super().__init__()
        self.fc1 = nn.Linear(hidden, ffn)
        self.activation = nn.ReLU()

    def forward(self, x):
        return self.activation(self.fc1(x))


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden, ffn]


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
