"""Causal grouped-query attention as Llama's eager code writes it: repeat_kv, q @ k^T / sqrt(d),
add a causal -inf mask, softmax in fp32, cast back to bf16, @ v. Shapes: Llama-3-8B
(32 query heads, 8 KV heads, head dim 128), 2 sequences of 2048 tokens.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

batch = 2
heads = 32
kv_heads = 8
seq_len = 2048
head_dim = 128
# eager on H100 ~ 2 ms (estimate: 268M scores: bf16 matmul out, /sqrt, +mask, fp32 softmax, cast = ~6.4 GB moved; 137 GFLOP)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 1, "heads": 8, "kv_heads": 2, "seq_len": 1000, "head_dim": 128},
        {"batch": 1, "heads": 4, "kv_heads": 2, "seq_len": 100, "head_dim": 128},
    ],
    "dtype": "bfloat16",
}


def repeat_kv(x, n_rep):
    b, h, s, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        n_rep = q.shape[1] // k.shape[1]
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        s, d = q.shape[2], q.shape[3]
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d)
        mask = torch.full((s, s), float("-inf"), device=q.device, dtype=scores.dtype).triu(1)
        scores = scores + mask
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(probs, v)


def get_inputs():
    return [
        torch.randn(batch, heads, seq_len, head_dim),
        torch.randn(batch, kv_heads, seq_len, head_dim),
        torch.randn(batch, kv_heads, seq_len, head_dim),
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
