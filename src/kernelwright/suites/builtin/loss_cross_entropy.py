"""Causal-LM cross-entropy, mean over target tokens, with ignore_index -100 on masked (prompt) tokens,
as in supervised fine-tuning. Shapes: Llama-2-7B vocabulary (32000), 8 sequences of 1024 tokens.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

tokens = 8192
vocab = 32000
# eager on H100 ~ 1.3 ms (estimate: 262M fp32 logits = 1.05 GB; log_softmax reads ~3x and writes once = 4.2 GB, nll_loss small)

KERNELWRIGHT = {
    "shape_variants": [
        {"tokens": 300, "vocab": 32001},
        {"tokens": 8, "vocab": 32000},
    ],
    # Integer targets are not redrawn by other distributions (only floating tensors are), so
    # the logits still get the wide default draw; targets always come from get_inputs.
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets, ignore_index=-100)


def get_inputs():
    # A trained model's logits: the target's logit raised by a per-token confidence.
    targets = torch.randint(0, vocab, (tokens,))
    logits = torch.randn(tokens, vocab) * 4.0
    logits.scatter_add_(1, targets[:, None], torch.rand(tokens, 1) * 25.0)
    masked = torch.rand(tokens) < 0.25
    masked[0] = False  # at least one target counts
    return [logits, torch.where(masked, torch.full_like(targets, -100), targets)]


def get_init_inputs():
    return []
