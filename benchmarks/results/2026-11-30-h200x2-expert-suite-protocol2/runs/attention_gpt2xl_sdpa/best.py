"""Causal attention through F.scaled_dot_product_attention (is_causal=True), bf16.
Shapes: GPT-2 XL (25 heads, head dim 64), 64 sequences of 1024 tokens.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch = 64
heads = 25
seq_len = 1024
head_dim = 64
# eager on H100 ~ 0.8 ms (estimate: 215 GFLOP causal on the flash backend at ~300 TFLOPS; 0.6 GB of q, k, v, out)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "heads": 25, "seq_len": 333, "head_dim": 64},
        {"batch": 1, "heads": 3, "seq_len": 257, "head_dim": 64},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def get_inputs():
    return [torch.randn(batch, heads, seq_len, head_dim) for _ in range(3)]


def get_init_inputs():
    return []


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
