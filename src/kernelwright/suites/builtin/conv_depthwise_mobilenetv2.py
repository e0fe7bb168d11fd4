"""Depthwise 3x3 convolution (groups = channels), stride 1, padding 1, no bias, NCHW fp32.
Shapes: MobileNetV2 inverted-residual block at 56x56 (24 channels expanded 6x to 144), batch 384.
"""
import torch
import torch.nn as nn

batch = 384
channels = 144
height = 56
width = 56
# eager on H100 ~ 0.7 ms (estimate: 173M fp32 elements = 0.69 GB in + 0.69 GB out; cuDNN depthwise runs well below bandwidth)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "channels": 96, "height": 113, "width": 111},
        {"batch": 2, "channels": 144, "height": 28, "width": 28},
    ],
}


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, groups=channels, bias=False)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(batch, channels, height, width)]


def get_init_inputs():
    return [channels]
