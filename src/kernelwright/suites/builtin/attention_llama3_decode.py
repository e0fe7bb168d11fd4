"""Decode-step attention over a KV cache, Llama's eager code: one query token per sequence,
repeat_kv on the cache (materialized 4x), q @ k^T / sqrt(d), fp32 softmax, @ v, bf16.
Shapes: Llama-3-8B (32 query heads, 8 KV heads, head dim 128), batch 32 with 4096 cached tokens.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

batch = 32
heads = 32
kv_heads = 8
context = 4096
head_dim = 128
# eager on H100 ~ 1.5 ms (estimate: 0.54 GB cache read, repeat_kv writes 2.1 GB and both matmuls read it back = 4.8 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "heads": 32, "kv_heads": 8, "context": 1000, "head_dim": 128},
        {"batch": 2, "heads": 8, "kv_heads": 2, "context": 250, "head_dim": 128},
    ],
    "dtype": "bfloat16",
}


def repeat_kv(x, n_rep):
    b, h, s, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k_cache, v_cache):
        n_rep = q.shape[1] // k_cache.shape[1]
        k, v = repeat_kv(k_cache, n_rep), repeat_kv(v_cache, n_rep)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(q.shape[-1])
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(probs, v)


def get_inputs():
    return [
        torch.randn(batch, heads, 1, head_dim),
        torch.randn(batch, kv_heads, context, head_dim),
        torch.randn(batch, kv_heads, context, head_dim),
    ]


def get_init_inputs():
    return []
