"""Tall-skinny matmul: a LoRA down-projection (nn.Linear without bias to rank 16) over many tokens,
memory-bound on reading the activations. Shapes: LoRA rank 16 on Llama-2-7B (hidden 4096),
80 sequences of 2048 tokens.
"""
import torch
import torch.nn as nn

batch = 80
seq_len = 2048
hidden = 4096
rank = 16
# eager on H100 ~ 0.5 ms (estimate: reads 671M bf16 activations = 1.34 GB; 22 GFLOP is negligible)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 1000, "hidden": 1000, "rank": 7},
        {"batch": 2, "seq_len": 100, "hidden": 1024, "rank": 16},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, rank):
        super().__init__()
        self.lora_A = nn.Linear(hidden, rank, bias=False)

    def forward(self, x):
        return self.lora_A(x)


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden, rank]


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
