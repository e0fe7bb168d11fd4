"""NeRF volume-rendering weights: w_i = alpha_i * prod_{j<i} (1 - alpha_j + 1e-10), the exclusive
cumulative product (transmittance) along each ray, as in NeRF's raw2outputs.
Shapes: NeRF rendering one 1920x1080 frame (2,073,600 rays), 64 coarse + 128 fine = 192 samples per ray.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

rays = 2073600
samples = 192
# eager on H100 ~ 5 ms (estimate: 398M fp32 elements = 1.6 GB per tensor; rsub, add, cat, cumprod, mul move ~11 tensors = 17.5 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"rays": 10007, "samples": 97},
        {"rays": 1000, "samples": 192},
    ],
    # alpha = 1 - exp(-sigma * delta) lies in [0, 1): other draws make the product overflow.
    "pinned_inputs": True,
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, alpha):
        ones = torch.ones_like(alpha[:, :1])
        transmittance = torch.cumprod(torch.cat([ones, 1.0 - alpha + 1e-10], dim=-1), dim=-1)[:, :-1]
        return alpha * transmittance


def get_inputs():
    # Half the samples in empty space (density 0), the rest with a ReLU'd density; step 0.02.
    sigma = F.relu(torch.randn(rays, samples)) * 2.0
    return [1.0 - torch.exp(-sigma * 0.02)]


def get_init_inputs():
    return []
