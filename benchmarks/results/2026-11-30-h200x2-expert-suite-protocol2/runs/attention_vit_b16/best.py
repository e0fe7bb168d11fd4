"""Non-causal multi-head attention core as timm's ViT writes it without fused attention:
softmax((q * d^-0.5) @ k^T) @ v, in bf16. Shapes: ViT-B/16 at 224x224 (12 heads, head dim 64,
197 tokens with the class token), batch 512.
"""
import torch
import torch.nn as nn

batch = 512
heads = 12
seq_len = 197
head_dim = 64
# eager on H100 ~ 0.8 ms (estimate: 238M bf16 scores = 477 MB written, softmax read+write, read again = 1.9 GB + q scaling; 61 GFLOP)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "heads": 12, "seq_len": 577, "head_dim": 64},
        {"batch": 1, "heads": 4, "seq_len": 197, "head_dim": 64},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        q = q * q.shape[-1] ** -0.5
        attn = q @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        return attn @ v


def get_inputs():
    return [torch.randn(batch, heads, seq_len, head_dim) for _ in range(3)]


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
