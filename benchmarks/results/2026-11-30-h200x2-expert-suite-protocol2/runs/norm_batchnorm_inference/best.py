"""BatchNorm2d in inference mode: per-channel (x - running_mean) / sqrt(running_var + eps) * weight + bias.
Shapes: ResNet-50 stem bn1 (64 channels at 112x112), batch 256.
"""
import torch
import torch.nn as nn

batch = 256
channels = 64
height = 112
width = 112
# eager on H100 ~ 0.5 ms (estimate: one kernel reads and writes 205M fp32 elements = 1.6 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "channels": 65, "height": 113, "width": 111},
        {"batch": 2, "channels": 64, "height": 40, "width": 40},
    ],
}


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        with torch.no_grad():  # statistics and affine of a trained network, not the defaults
            self.bn.running_mean.normal_(0.0, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.normal_(0.0, 0.2)

    def forward(self, x):
        return self.bn(x)


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
