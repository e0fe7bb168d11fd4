"""3x3 convolution, stride 1, padding 1, no bias (nn.Conv2d), NCHW fp32.
Shapes: ResNet-50 layer1 bottleneck conv2 (64 -> 64 channels at 56x56), batch 512.
"""
import torch
import torch.nn as nn

batch = 512
channels = 64
height = 56
width = 56
# eager on H100 ~ 0.7 ms (estimate: 118 GFLOP on cuDNN with PyTorch's default TF32 at ~200 TFLOPS achieved, plus 0.8 GB in/out)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "channels": 64, "height": 57, "width": 55},
        {"batch": 1, "channels": 64, "height": 28, "width": 28},
    ],
}


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.randn(batch, channels, height, width)]


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
