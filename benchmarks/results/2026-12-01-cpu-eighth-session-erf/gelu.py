import torch
import torch.nn as nn
import torch.nn.functional as F
rows = 4096
cols = 1024


class Model(nn.Module):
    def forward(self, x):
        return F.gelu(x)


def get_inputs():
    return [torch.randn(rows, cols) * 2.0]


def get_init_inputs():
    return []
