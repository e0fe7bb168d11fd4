"""Batched matmul, one GEMM per expert (torch.bmm): tokens routed to each expert times its w1
(up-projection) weight. Shapes: Mixtral-8x7B experts (8 experts, hidden 4096 -> 14336),
1536 tokens routed to each expert.
"""
import torch
import torch.nn as nn

experts = 8
tokens_per_expert = 1536
hidden = 4096
intermediate = 14336
# eager on H100 ~ 2.2 ms (estimate: 8 * 2 * 1536 * 4096 * 14336 = 1.44 TFLOP at ~650 TFLOPS bf16)

KERNELWRIGHT = {
    "shape_variants": [
        {"experts": 3, "tokens_per_expert": 333, "hidden": 1000, "intermediate": 1500},
        {"experts": 3, "tokens_per_expert": 37, "hidden": 128, "intermediate": 352},
    ],
    "dtype": "bfloat16",
}


class Model(nn.Module):
    def __init__(self, experts, hidden, intermediate):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(experts, hidden, intermediate).normal_(0.0, hidden ** -0.5))

    def forward(self, x):
        return torch.bmm(x, self.w1)


def get_inputs():
    return [torch.randn(experts, tokens_per_expert, hidden)]


def get_init_inputs():
    return [experts, hidden, intermediate]


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
