"""InstanceNorm2d without affine or running statistics: each (sample, channel) plane normalized.
Shapes: CycleGAN ResNet generator, first block (64 channels at 256x256), batch 48.
"""
import torch
import torch.nn as nn

batch = 48
channels = 64
height = 256
width = 256
# eager on H100 ~ 0.75 ms (estimate: 201M fp32 elements = 805 MB; statistics pass plus normalize pass move 3 tensors = 2.4 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "channels": 65, "height": 255, "width": 257},
        {"batch": 2, "channels": 64, "height": 40, "width": 40},
    ],
}


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)

    def forward(self, x):
        return self.norm(x)


def get_inputs():
    return [torch.randn(batch, channels, height, width)]


def get_init_inputs():
    return [channels]
