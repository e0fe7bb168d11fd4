"""Ninth session: the depthwise 3x3 convolution (MobileNetV2, 384 x 144 x 56 x 56, fp32) at 41.5 % of the speed
of light. The template's kernel (1-D blocks of a plane; each tap's address from the pixel's row and column,
divided out per element), against hand-written forms:
SHIFT: stride 1 only: each tap's address is the pixel's own plus a constant ((r - PH) * W + s - PW), the
  plane's size passed as an argument (Triton then knows it is a multiple of 16 and vectorizes the store).
TILE2D: a [BLOCK_H, BLOCK_W] tile of output rows and columns (no division at all), stride 1.
PLANES: SHIFT with each program taking PER planes' blocks in a loop (fewer, longer programs)."""
import sys
sys.path.insert(0, ".bench-state")
import torch
import triton
import triton.language as tl
from explore import Case


@triton.jit
def dw_shift(x_ptr, w_ptr, out_ptr, C, H, W, plane, R: tl.constexpr, S: tl.constexpr, PH: tl.constexpr,
             PW: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    blocks = tl.cdiv(plane, BLOCK)
    plane_id = pid // blocks
    channel = plane_id % C
    pixel = pid % blocks * BLOCK + tl.arange(0, BLOCK)
    mask = pixel < plane
    oh = pixel // W
    ow = pixel - oh * W
    base = plane_id.to(tl.int64) * plane
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for r in tl.static_range(R):
        ih = oh + (r - PH)
        row_ok = mask & (ih >= 0) & (ih < H)
        for s in tl.static_range(S):
            iw = ow + (s - PW)
            v = tl.load(x_ptr + base + pixel + ((r - PH) * W + (s - PW)), mask=row_ok & (iw >= 0) & (iw < W), other=0.0)
            acc += v * tl.load(w_ptr + channel * (R * S) + r * S + s)
    tl.store(out_ptr + base + pixel, acc, mask=mask)


@triton.jit
def dw_planes(x_ptr, w_ptr, out_ptr, C, H, W, plane, planes, R: tl.constexpr, S: tl.constexpr, PH: tl.constexpr,
              PW: tl.constexpr, BLOCK: tl.constexpr, PER: tl.constexpr):
    blocks = tl.cdiv(plane, BLOCK)
    for i in range(PER):
        job = tl.program_id(0) * PER + i
        plane_id = job // blocks
        if plane_id < planes:
            channel = plane_id % C
            pixel = job % blocks * BLOCK + tl.arange(0, BLOCK)
            mask = pixel < plane
            oh = pixel // W
            ow = pixel - oh * W
            base = plane_id.to(tl.int64) * plane
            acc = tl.zeros((BLOCK,), dtype=tl.float32)
            for r in tl.static_range(R):
                ih = oh + (r - PH)
                row_ok = mask & (ih >= 0) & (ih < H)
                for s in tl.static_range(S):
                    iw = ow + (s - PW)
                    v = tl.load(x_ptr + base + pixel + ((r - PH) * W + (s - PW)), mask=row_ok & (iw >= 0) & (iw < W),
                                other=0.0)
                    acc += v * tl.load(w_ptr + channel * (R * S) + r * S + s)
            tl.store(out_ptr + base + pixel, acc, mask=mask)


@triton.jit
def dw_tile(x_ptr, w_ptr, out_ptr, C, H, W, R: tl.constexpr, S: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
            BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    pid = tl.program_id(0)
    tiles = tl.cdiv(H, BLOCK_H)
    plane_id = pid // tiles
    channel = plane_id % C
    oh = pid % tiles * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    ow = tl.arange(0, BLOCK_W)[None, :]
    mask = (oh < H) & (ow < W)
    base = plane_id.to(tl.int64) * H * W
    acc = tl.zeros((BLOCK_H, BLOCK_W), dtype=tl.float32)
    for r in tl.static_range(R):
        ih = oh + (r - PH)
        row_ok = mask & (ih >= 0) & (ih < H)
        for s in tl.static_range(S):
            iw = ow + (s - PW)
            v = tl.load(x_ptr + base + ih * W + iw, mask=row_ok & (iw >= 0) & (iw < W), other=0.0)
            acc += v * tl.load(w_ptr + channel * (R * S) + r * S + s)
    tl.store(out_ptr + base + oh * W + ow, acc, mask=mask)


def main():
    c = Case("conv_depthwise_mobilenetv2")
    x = c.inputs[0]
    w = c.ref.conv.weight.detach().contiguous()
    n, ch, h, wd = x.shape
    plane = h * wd
    out = torch.empty_like(x)
    for rnd in range(2):
        for point in [dict(BLOCK=256, num_warps=2), dict(BLOCK=256, num_warps=4), dict(BLOCK=1024, num_warps=4),
                      dict(BLOCK=1024, num_warps=8)][: 4 if rnd == 0 else 2]:
            c.time_source(f"r{rnd} template {point}", c.source("triton.depthwise", **point))
        for block, warps in ((512, 4), (1024, 4), (1024, 8), (2048, 8), (4096, 8)) if rnd == 0 else ((1024, 4), (2048, 8)):
            grid = (n * ch * triton.cdiv(plane, block),)
            c.time_fn(f"r{rnd} SHIFT BLOCK={block} warps={warps}", lambda: dw_shift[grid](
                x, w, out, ch, h, wd, plane, R=3, S=3, PH=1, PW=1, BLOCK=block, num_warps=warps) and out)
        for bh, warps in ((8, 4), (16, 4), (16, 8), (32, 8)) if rnd == 0 else ((8, 4), (16, 8)):
            grid = (n * ch * triton.cdiv(h, bh),)
            c.time_fn(f"r{rnd} TILE2D BLOCK_H={bh} BLOCK_W=64 warps={warps}", lambda: dw_tile[grid](
                x, w, out, ch, h, wd, R=3, S=3, PH=1, PW=1, BLOCK_H=bh, BLOCK_W=64, num_warps=warps) and out)
        for block, per, warps in ((1024, 4, 4), (1024, 16, 4), (2048, 8, 8)) if rnd == 0 else ((1024, 4, 4),):
            jobs = n * ch * triton.cdiv(plane, block)
            grid = (triton.cdiv(jobs, per),)
            c.time_fn(f"r{rnd} PLANES BLOCK={block} PER={per} warps={warps}", lambda: dw_planes[grid](
                x, w, out, ch, h, wd, plane, n * ch, R=3, S=3, PH=1, PW=1, BLOCK=block, PER=per, num_warps=warps)
                and out)


if __name__ == "__main__":
    main()
