"""Spatial mean over H and W, the squeeze step of a squeeze-and-excitation block.
Shapes: SE-ResNet-50 (SENet) stage 1, 256 channels at 56x56, batch 512.
"""
import torch
import torch.nn as nn

batch = 512
channels = 256
height = 56
width = 56
# eager on H100 ~ 0.5 ms (estimate: one kernel reads 411M fp32 elements = 1.64 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 5, "channels": 100, "height": 57, "width": 55},
        {"batch": 2, "channels": 64, "height": 28, "width": 28},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.mean(dim=(2, 3))


def get_inputs():
    return [torch.randn(batch, channels, height, width)]


def get_init_inputs():
    return []


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
