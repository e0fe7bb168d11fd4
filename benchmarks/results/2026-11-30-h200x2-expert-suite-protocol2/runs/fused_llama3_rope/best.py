"""Rotary position embedding applied to queries and keys, Llama's apply_rotary_pos_emb:
x * cos + rotate_half(x) * sin, with cos/sin of positions (rope theta 500000) passed in, bf16.
Shapes: Llama-3-8B (32 query heads, 8 KV heads, head dim 128), 8 sequences of 4096 tokens.
"""
import torch
import torch.nn as nn

batch = 8
heads = 32
kv_heads = 8
seq_len = 4096
head_dim = 128
rope_theta = 500000.0
max_position = 8192
# eager on H100 ~ 1 ms (estimate: q 268 MB + k 67 MB bf16; mul, neg, cat, mul, add move ~10x q's and k's bytes = 3.4 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "heads": 8, "kv_heads": 2, "seq_len": 333, "head_dim": 128},
        {"batch": 1, "heads": 4, "kv_heads": 2, "seq_len": 200, "head_dim": 128},
    ],
    "dtype": "bfloat16",
    # cos and sin are those of real positions (equal halves, values in [-1, 1]); kernels may rely on that.
    "pinned_inputs": True,
}


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, cos, sin):
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def get_inputs():
    # Each sequence continues from a random offset (a chunk of a longer context).
    start = torch.randint(0, max_position - seq_len + 1, (batch, 1))
    positions = (start + torch.arange(seq_len)).float()
    inv_freq = 1.0 / (rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    freqs = positions[:, :, None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return [
        torch.randn(batch, heads, seq_len, head_dim),
        torch.randn(batch, kv_heads, seq_len, head_dim),
        emb.cos(),
        emb.sin(),
    ]


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
