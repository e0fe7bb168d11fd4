"""triton.patch_embed: float32 16x16 patch embedding of [512, 3, 224, 224] into [512, 197, 768], class token and position embedding fused; BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3, precision=tf32."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_patch_embed(x_ptr, w_ptr, bias_ptr, cls_ptr, pos_ptr, out_ptr, M, D, C, H, W, P, WP,
                   PH: tl.constexpr, PW: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    # Grouped order: the GROUP_M row blocks of a group take each column block in turn.
    pid = tl.program_id(0)
    group = GROUP_M * tl.cdiv(D, BLOCK_N)
    first_m = pid // group * GROUP_M
    group_m = tl.minimum(tl.cdiv(M, BLOCK_M) - first_m, GROUP_M)
    pid_m = first_m + pid % group % group_m
    pid_n = pid % group // group_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < D
    # Row m is patch p of image b, at (py, px) of the patch grid; its pixels start at its corner.
    image = offs_m // P
    patch = offs_m % P
    corner = image.to(tl.int64) * C * H * W + (patch // WP * PH * W + patch % WP * PW)
    KDIM = C * PH * PW
    # B[kk, n] = weight[n][kk]: the weight's rows are the reduction, contiguous.
    w_cols = w_ptr + offs_n.to(tl.int64) * KDIM
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, KDIM, BLOCK_K):
        kk = k0 + offs_k
        mask_k = kk < KDIM
        # Column kk is pixel (c, r, s) of the patch: channel plane, row within the image, column.
        within = kk % (PH * PW)
        col = kk // (PH * PW) * (H * W) + within // PW * W + within % PW
        a = tl.load(x_ptr + corner[:, None] + col[None, :], mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(w_cols[None, :] + kk[:, None], mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision="tf32")
    mask = mask_m[:, None] & mask_n[None, :]
    # Output row (b, 1 + p) of [N, 1 + P, D]; position embedding row 1 + p.
    token = patch + 1
    value = acc
    value += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    value += tl.load(pos_ptr + token[:, None] * D + offs_n[None, :], mask=mask, other=0.0).to(tl.float32)
    rows = image.to(tl.int64) * (P + 1) + token
    tl.store(out_ptr + rows[:, None] * D + offs_n[None, :], value.to(out_ptr.dtype.element_ty), mask=mask)
    # The class token row (b, 0) = cls_token + pos_embed[0], by the tiles holding an image's first patch.
    first = mask_m & (patch == 0)
    cls = (tl.load(cls_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
           + tl.load(pos_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32))
    cls_rows = image.to(tl.int64) * (P + 1)
    tl.store(out_ptr + cls_rows[:, None] * D + offs_n[None, :],
             (tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32) + cls[None, :]).to(out_ptr.dtype.element_ty),
             mask=first[:, None] & mask_n[None, :])


class ModelNew(nn.Module):
    def __init__(self, image_size, patch_size, embed_dim):
        super().__init__()
        num_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * 0.02)

    def forward(self, x):
        kw_x = x.contiguous()
        kw_weight = self.proj.weight.contiguous()
        kw_bias = self.proj.bias.contiguous()
        kw_cls = self.cls_token.contiguous()
        kw_pos = self.pos_embed.contiguous()
        kw_batch, kw_c, kw_h, kw_wd = kw_x.shape
        kw_d, _, kw_ph, kw_pw = kw_weight.shape
        kw_hp, kw_wp = kw_h // kw_ph, kw_wd // kw_pw
        kw_p = kw_hp * kw_wp
        kw_m = kw_batch * kw_p
        kw_out = torch.empty((kw_batch, kw_p + 1, kw_d), dtype=x.dtype, device=x.device)
        kw_patch_embed[(triton.cdiv(kw_m, 128) * triton.cdiv(kw_d, 128),)](kw_x, kw_weight, kw_bias, kw_cls, kw_pos, kw_out, kw_m, kw_d, kw_c, kw_h, kw_wd, kw_p, kw_wp, PH=kw_ph, PW=kw_pw, BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, num_warps=8, num_stages=3)
        return kw_out
