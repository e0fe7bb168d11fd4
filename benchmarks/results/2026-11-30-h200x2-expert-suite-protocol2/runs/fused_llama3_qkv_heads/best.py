"""Q, K, V projections with the head split: q_proj/k_proj/v_proj (bias-free nn.Linear), then
view(b, s, heads, d).transpose(1, 2) for each, bf16; returns (q, k, v).
Shapes: Llama-3-8B (hidden 4096, 32 query heads, 8 KV heads, head dim 128), 4 sequences of 2048 tokens.
"""
import torch
import torch.nn as nn

batch = 4
seq_len = 2048
hidden = 4096
heads = 32
kv_heads = 8
head_dim = 128
# eager on H100 ~ 0.7 ms (estimate: 2 * 8192 * 4096 * 6144 = 412 GFLOP at ~650 TFLOPS bf16; views cost nothing)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "seq_len": 333, "hidden": 1024, "heads": 8, "kv_heads": 2, "head_dim": 128},
        {"batch": 1, "seq_len": 64, "hidden": 512, "heads": 4, "kv_heads": 2, "head_dim": 128},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, hidden, heads, kv_heads, head_dim):
        super().__init__()
        self.head_dim = head_dim
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)

    def forward(self, x):
        b, s, _ = x.shape
        shape = (b, s, -1, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        return q, k, v


def get_inputs():
    return [torch.randn(batch, seq_len, hidden)]


def get_init_inputs():
    return [hidden, heads, kv_heads, head_dim]

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
