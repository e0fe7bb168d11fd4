"""Bias add fused with exact (erf) GELU, y = gelu(x + b), the intermediate activation of a BERT layer
whose dense matmul ran without its bias. Shapes: BERT-large (intermediate 4096), 64 sequences of 512 tokens.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch = 64
seq_len = 512
intermediate = 4096
# eager on H100 ~ 0.65 ms (estimate: 134M fp32 elements = 537 MB; add + gelu kernels move 4 tensors = 2.1 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "intermediate": 3072},
        {"batch": 2, "seq_len": 37, "intermediate": 1000},
    ],
}


class Model(nn.Module):
    def __init__(self, intermediate):
        super().__init__()
        # The bias of BERT's intermediate nn.Linear (same uniform init as nn.Linear's, fan-in 1024).
        self.bias = nn.Parameter(torch.empty(intermediate).uniform_(-1.0 / 32, 1.0 / 32))

    def forward(self, x):
        return F.gelu(x + self.bias)


def get_inputs():
    return [torch.randn(batch, seq_len, intermediate)]


def get_init_inputs():
    return [intermediate]
