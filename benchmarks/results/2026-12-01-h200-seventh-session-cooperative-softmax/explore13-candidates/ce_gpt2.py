"""Cross-entropy over GPT-2's vocabulary (50257 tokens), 8192 positions (probe task)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
vocab = 50257


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets)


def get_inputs():
    return [torch.randn(tokens, vocab) * 4.0, torch.randint(0, vocab, (tokens,))]


def get_init_inputs():
    return []
