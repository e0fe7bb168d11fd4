"""Pointwise (1x1) convolution, no bias, NCHW fp32: a channel-mixing GEMM over every pixel.
Shapes: ResNet-50 layer1 bottleneck conv3 (64 -> 256 channels at 56x56), batch 512.
"""
import torch
import torch.nn as nn

batch = 512
in_channels = 64
out_channels = 256
height = 56
width = 56
# eager on H100 ~ 0.7 ms (estimate: 0.41 GB in + 1.64 GB out = 2.05 GB; 53 GFLOP in TF32 is not the bound)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "in_channels": 60, "out_channels": 250, "height": 57, "width": 55},
        {"batch": 2, "in_channels": 64, "out_channels": 256, "height": 20, "width": 20},
    ],
}


class Model(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(batch, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels]


class ModelNew(Model):
    """kernelwright: no candidate beat eager PyTorch, so the answer is the reference itself."""
