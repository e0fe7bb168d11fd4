"""GroupNorm with 32 groups and a learned affine (nn.GroupNorm, eps 1e-6) on an NCHW feature map.
Shapes: Stable Diffusion VAE decoder, last up-block (128 channels at 512x512), batch 6.
"""
import torch
import torch.nn as nn

batch = 6
channels = 128
height = 512
width = 512
groups = 32
# eager on H100 ~ 0.75 ms (estimate: 201M fp32 elements = 805 MB; statistics pass plus normalize pass move 3 tensors = 2.4 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "channels": 96, "height": 127, "width": 129},
        {"batch": 2, "channels": 64, "height": 33, "width": 35},
    ],
}


class Model(nn.Module):
    def __init__(self, groups, channels):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_(0.0, 0.2)

    def forward(self, x):
        return self.norm(x)


def get_inputs():
    return [torch.randn(batch, channels, height, width)]


def get_init_inputs():
    return [groups, channels]

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
