"""LayerNorm over the hidden dimension with a learned weight and bias (nn.LayerNorm, eps 1e-5).
Shapes: GPT-2 XL (hidden 1600), 128 sequences of 1024 tokens.
"""
import torch
import torch.nn as nn

batch = 128
seq_len = 1024
hidden = 1600
# eager on H100 ~ 0.5 ms (estimate: one kernel reads and writes 210M fp32 elements = 1.7 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "hidden": 1000},
        {"batch": 2, "seq_len": 50, "hidden": 1600},
    ],
}


class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=1e-5)
        with torch.no_grad():  # trained values, not the identity nn.LayerNorm starts from
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_(0.0, 0.2)

    def forward(self, x):
        return self.norm(x)


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden]
