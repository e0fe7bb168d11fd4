"""Folded BatchNorm (per-channel scale and shift), LeakyReLU(0.1) and a clamp to [-0.3, 3]:
YOLOv3's Darknet-53 conv activation with a quantization-friendly clamped range.
Shapes: YOLOv3 52x52 detection stage (256 channels), batch 128.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch = 128
channels = 256
height = 52
width = 52
# eager on H100 ~ 0.85 ms (estimate: 88.6M fp32 elements = 354 MB; mul, add, leaky_relu, clamp move 8 tensors = 2.8 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "channels": 255, "height": 53, "width": 51},
        {"batch": 2, "channels": 10, "height": 39, "width": 41},
    ],
}


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        # BatchNorm folded into the conv's output: gamma / sqrt(var + eps) and beta - mean * that.
        self.scale = nn.Parameter(torch.empty(channels, 1, 1).uniform_(0.5, 1.5))
        self.shift = nn.Parameter(torch.randn(channels, 1, 1) * 0.5)

    def forward(self, x):
        y = F.leaky_relu(x * self.scale + self.shift, negative_slope=0.1)
        return torch.clamp(y, min=-0.3, max=3.0)


def get_inputs():
    return [torch.randn(batch, channels, height, width) * 2.0]


def get_init_inputs():
    return [channels]

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
