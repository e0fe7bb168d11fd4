"""triton.depthwise: float32 3x3 convolution, stride (1, 1), padding (1, 1), groups 144; BLOCK=256, num_warps=2."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def kw_depthwise(x_ptr, w_ptr, out_ptr, C, H, W, P, Q, stride_xn, stride_xc, stride_xh, stride_xw,
                 R: tl.constexpr, S: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr,
                 PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr, BLOCK: tl.constexpr):
    # One program: BLOCK output pixels of one (image, channel) plane, the planes' blocks in order.
    plane = P * Q
    blocks = tl.cdiv(plane, BLOCK)
    pid = tl.program_id(0)
    plane_id = pid // blocks
    channel = plane_id % C
    pixel = pid % blocks * BLOCK + tl.arange(0, BLOCK)
    mask = pixel < plane
    ih0 = pixel // Q * SH - PH
    iw0 = pixel % Q * SW - PW
    x_plane = x_ptr + (plane_id // C).to(tl.int64) * stride_xn + channel * stride_xc
    w_taps = w_ptr + channel * (R * S)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for r in tl.static_range(R):
        ih = ih0 + r * DH
        row_inside = mask & (ih >= 0) & (ih < H)
        for s in tl.static_range(S):
            iw = iw0 + s * DW
            v = tl.load(x_plane + ih * stride_xh + iw * stride_xw, mask=row_inside & (iw >= 0) & (iw < W), other=0.0)
            acc += v.to(tl.float32) * tl.load(w_taps + r * S + s).to(tl.float32)
    offs = plane_id.to(tl.int64) * plane + pixel
    value = acc
    tl.store(out_ptr + offs, value.to(out_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, groups=channels, bias=False)

    def forward(self, x):
        kw_x = x.contiguous()
        kw_weight = self.conv.weight.contiguous()
        kw_batch, kw_c, kw_h, kw_wd = kw_x.shape
        kw_k, kw_cg, kw_r, kw_s = kw_weight.shape
        kw_p = (kw_h + 2 - 1 * (kw_r - 1) - 1) // 1 + 1
        kw_q = (kw_wd + 2 - 1 * (kw_s - 1) - 1) // 1 + 1
        kw_out = torch.empty((kw_batch, kw_k, kw_p, kw_q), dtype=x.dtype, device=x.device)
        kw_depthwise[(kw_batch * kw_c * triton.cdiv(kw_p * kw_q, 256),)](kw_x, kw_weight, kw_out, kw_c, kw_h, kw_wd, kw_p, kw_q, kw_x.stride(0), kw_x.stride(1), kw_x.stride(2), kw_x.stride(3), R=kw_r, S=kw_s, SH=1, SW=1, PH=1, PW=1, DH=1, DW=1, BLOCK=256, num_warps=2)
        return kw_out
