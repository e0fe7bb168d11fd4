"""Conv + BatchNorm (inference) + ReLU: the ResNet-50 stem, conv1 7x7 stride 2 (3 -> 64 channels,
no bias), bn1 with trained statistics, relu. Shapes: ResNet-50 at 224x224, batch 256.
"""
import torch
import torch.nn as nn

batch = 256
height = 224
width = 224
# eager on H100 ~ 1.8 ms (estimate: conv 59 GFLOP in TF32 with 3 input channels ~0.8 ms; BN and ReLU each read+write 0.82 GB = 1 ms)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "height": 223, "width": 227},
        {"batch": 2, "height": 64, "width": 64},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        with torch.no_grad():  # statistics and affine of a trained network, not the defaults
            self.bn1.running_mean.normal_(0.0, 0.5)
            self.bn1.running_var.uniform_(0.5, 2.0)
            self.bn1.weight.uniform_(0.5, 1.5)
            self.bn1.bias.normal_(0.0, 0.2)

    def forward(self, x):
        return self.relu(self.bn1(self.conv1(x)))


def get_inputs():
    return [torch.randn(batch, 3, height, width)]


def get_init_inputs():
    return []

import torch  # noqa: E402


class ModelNew(torch.nn.Module):
    """kernelwright: no candidate beat torch.compile, so the answer is the reference, compiled."""

    def __init__(self, *args):
        super().__init__()
        self.inner = torch.compile(Model(*args))

    def forward(self, *inputs):
        return self.inner(*inputs)
