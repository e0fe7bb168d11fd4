"""Reverse cumulative sum along time: the returns-to-go R_t = sum_{t'>=t} r_t' that condition
Decision Transformer, written as flip(cumsum(flip(r))).
Shapes: Decision Transformer on D4RL MuJoCo (1000-step trajectories), 131072 trajectories.
"""
import torch
import torch.nn as nn

trajectories = 131072
steps = 1000
# eager on H100 ~ 0.95 ms (estimate: 131M fp32 elements = 524 MB; flip, cumsum, flip move 6 tensors = 3.1 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"trajectories": 999, "steps": 777},
        {"trajectories": 200, "steps": 1000},
    ],
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, rewards):
        return torch.flip(torch.cumsum(torch.flip(rewards, dims=[-1]), dim=-1), dims=[-1])


def get_inputs():
    return [torch.randn(trajectories, steps)]


def get_init_inputs():
    return []
