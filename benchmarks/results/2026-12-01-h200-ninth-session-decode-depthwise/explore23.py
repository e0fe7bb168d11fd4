"""Ninth session: depthwise 3x3 (as explore22) with input rows reused from registers. ROLL: a program takes G
planes and BLOCK_W columns down ROWS output rows, keeping the three input rows an output row needs (each as
its three column-shifted loads) and loading only the next one per step: 3 loads an output row, not 9.
Also smaller TILE2D tiles and template points (explore22 found fewer elements a program faster)."""
import sys
sys.path.insert(0, ".bench-state")
import torch
import triton
import triton.language as tl
from explore import Case
from explore22 import dw_tile


@triton.jit
def roll_row(x_ptr, base, ih, ow, H, W, plane_ok):
    # Input row ih at columns ow - 1, ow, ow + 1 (zero outside the image).
    ok = plane_ok & (ih >= 0) & (ih < H)
    ptrs = x_ptr + base + ih * W + ow
    a = tl.load(ptrs - 1, mask=ok & (ow >= 1) & (ow <= W), other=0.0)
    b = tl.load(ptrs, mask=ok & (ow < W), other=0.0)
    c = tl.load(ptrs + 1, mask=ok & (ow + 1 < W), other=0.0)
    return a, b, c


@triton.jit
def dw_roll(x_ptr, w_ptr, out_ptr, C, H, W, planes, G: tl.constexpr, BLOCK_W: tl.constexpr, ROWS: tl.constexpr):
    pid = tl.program_id(0)
    row_blocks = tl.cdiv(H, ROWS)
    plane = (pid // row_blocks) * G + tl.arange(0, G)[:, None]
    h0 = pid % row_blocks * ROWS + tl.zeros((1, 1), dtype=tl.int32)  # a tensor: the interpreter masks with it
    plane_ok = plane < planes
    channel = plane % C
    ow = tl.arange(0, BLOCK_W)[None, :]
    base = plane.to(tl.int64) * H * W
    wp = w_ptr + channel * 9
    w00 = tl.load(wp + 0, mask=plane_ok, other=0.0)
    w01 = tl.load(wp + 1, mask=plane_ok, other=0.0)
    w02 = tl.load(wp + 2, mask=plane_ok, other=0.0)
    w10 = tl.load(wp + 3, mask=plane_ok, other=0.0)
    w11 = tl.load(wp + 4, mask=plane_ok, other=0.0)
    w12 = tl.load(wp + 5, mask=plane_ok, other=0.0)
    w20 = tl.load(wp + 6, mask=plane_ok, other=0.0)
    w21 = tl.load(wp + 7, mask=plane_ok, other=0.0)
    w22 = tl.load(wp + 8, mask=plane_ok, other=0.0)
    p0, p1, p2 = roll_row(x_ptr, base, h0 - 1, ow, H, W, plane_ok)
    c0, c1, c2 = roll_row(x_ptr, base, h0, ow, H, W, plane_ok)
    for i in range(ROWS):
        oh = h0 + i
        n0, n1, n2 = roll_row(x_ptr, base, oh + 1, ow, H, W, plane_ok)
        acc = p0 * w00 + p1 * w01 + p2 * w02
        acc += c0 * w10 + c1 * w11 + c2 * w12
        acc += n0 * w20 + n1 * w21 + n2 * w22
        tl.store(out_ptr + base + oh * W + ow, acc, mask=plane_ok & (ow < W) & (oh < H))
        p0, p1, p2 = c0, c1, c2
        c0, c1, c2 = n0, n1, n2


def main():
    c = Case("conv_depthwise_mobilenetv2")
    x = c.inputs[0]
    w = c.ref.conv.weight.detach().contiguous()
    n, ch, h, wd = x.shape
    out = torch.empty_like(x)
    planes = n * ch
    for rnd in range(2):
        for g, rows, warps in ((1, 56, 1), (1, 56, 2), (2, 56, 2), (4, 56, 4), (4, 28, 4), (4, 14, 4), (8, 28, 4),
                               (8, 14, 8), (2, 28, 1), (4, 56, 2))[: 10 if rnd == 0 else 4]:
            grid = (triton.cdiv(planes, g) * triton.cdiv(h, rows),)
            c.time_fn(f"r{rnd} ROLL G={g} ROWS={rows} warps={warps}", lambda: dw_roll[grid](
                x, w, out, ch, h, wd, planes, G=g, BLOCK_W=64, ROWS=rows, num_warps=warps) and out)
        for bh, warps in ((4, 2), (8, 2), (4, 1), (8, 4)) if rnd == 0 else ((8, 2),):
            grid = (n * ch * triton.cdiv(h, bh),)
            c.time_fn(f"r{rnd} TILE2D BLOCK_H={bh} BLOCK_W=64 warps={warps}", lambda: dw_tile[grid](
                x, w, out, ch, h, wd, R=3, S=3, PH=1, PW=1, BLOCK_H=bh, BLOCK_W=64, num_warps=warps) and out)
        for point in ([dict(BLOCK=128, num_warps=1), dict(BLOCK=256, num_warps=1), dict(BLOCK=128, num_warps=2)]
                      if rnd == 0 else []):
            c.time_source(f"r{rnd} template {point}", c.source("triton.depthwise", **point))


if __name__ == "__main__":
    main()
