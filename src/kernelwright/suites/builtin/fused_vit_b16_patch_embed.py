"""ViT patch embedding as timm does it: Conv2d(3, 768, kernel 16, stride 16), flatten to tokens,
prepend the class token, add the learned position embedding; fp32.
Shapes: ViT-B/16 at 224x224 (196 patches + class token, embed dim 768), batch 512.
"""
import torch
import torch.nn as nn

batch = 512
image_size = 224
patch_size = 16
embed_dim = 768
# eager on H100 ~ 1 ms (estimate: conv 118 GFLOP in TF32 ~0.5 ms; transpose-copying cat and the add move ~1.3 GB)

KERNELWRIGHT = {
    "shape_variants": [
        {"batch": 3, "image_size": 384, "patch_size": 16, "embed_dim": 768},
        {"batch": 2, "image_size": 64, "patch_size": 16, "embed_dim": 192},
    ],
}


class Model(nn.Module):
    def __init__(self, image_size, patch_size, embed_dim):
        super().__init__()
        num_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * 0.02)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x + self.pos_embed


def get_inputs():
    return [torch.randn(batch, 3, image_size, image_size)]


def get_init_inputs():
    return [image_size, patch_size, embed_dim]
