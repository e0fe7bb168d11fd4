"""Triton templates for 2-D convolutions (the Conv pattern): an implicit GEMM, and a direct depthwise kernel.

triton.conv: the convolution as a matrix product that is never materialized (no im2col buffer). Its rows
are the output pixels (M = N * P * Q), its columns the output channels of one group (K / groups), its
reduction the (input channel, filter row, filter column) triples of the group (C / groups * R * S).
Each program computes a BLOCK_M x BLOCK_N output tile with tl.dot over BLOCK_K-wide slices of the
reduction, gathering the input tile straight from x with the padding as masked (zero) loads, and takes
tiles in groups of GROUP_M row blocks as the GEMM does (programs running together share input rows and
filters through L2). Groups are the grid's second axis. The bias and the epilogue (batch norm, an
activation, a residual) are applied to the fp32 accumulator, per-channel vectors indexed by the output
channel, and the result is written once, in the input dtype.

The tensors are read as given, NCHW, with no layout change: consecutive output pixels are consecutive
addresses of x (along a row of the image, for stride 1) and of the output, so the gathered input tile
and the stored output tile are coalesced along M; the weight [K, C / groups, R, S] is already the
reduction-major B matrix, read in place. Converting x to NHWC first (a permute and a copy) would move
the whole input through memory once more, as many bytes as the kernel's own reads, to gain contiguity
along the channels that NCHW already gives along the pixels.

The reduction is walked in one of two orders (`loop`):
  "taps"  filter tap by filter tap (r, s), BLOCK_K input channels at a time: the padding mask is per
          row and the addresses advance by a stride, with no division per element. Best when a group
          has many channels (C / groups >= 16).
  "flat"  the reduction index in the weight's own order, each slice split into (c, r, s): full slices
          whatever the channel count, so a 3-channel stem with a 7 x 7 filter does 147 products in five
          slices of 32, not 49 slices of 16 with 3 channels each.
A 1 x 1 convolution with stride 1 and no padding is a plain GEMM (no `loop` parameter): x is read as
[N, C, H * W], the pixel index is the offset within a channel's plane and there is nothing to mask
beyond the matrix's edges.

Precision: as triton.gemm. fp32 tasks multiply in IEEE fp32 (tl.dot's input_precision="ieee") unless the
task's tolerance admits less (`precision` lists what it admits, fastest first); bf16 and fp16 tasks use
the tensor cores natively; accumulation is fp32. The bias and the epilogue are triton.gemm's (`_Tensors`,
with per-channel vectors), rounded once to the output's dtype at the store: the epilogue is mostly batch
norm, which the reference computes as one op and rounds once.

triton.depthwise: one input channel per output channel (groups == C == K) leaves no reduction over
channels for a matrix product to use (16 of every 16 columns of a tensor-core tile would be wasted).
Each program computes a BLOCK_P x BLOCK_Q tile of one (image, channel) plane's output directly: the
R x S taps are unrolled, each a masked load of the tile's input pixels times one filter value, in fp32.
Neighbouring taps read overlapping pixels, which the cache serves.

Parameters: conv: BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages, loop, (fp32) precision;
depthwise: BLOCK_P, BLOCK_Q, num_warps. N, C, H, W and K are read from the tensors at run time (shape variants
change them; groups is C over the weight's input channels); the filter's stride, padding and dilation
are the task's, and the task's shapes only choose the defaults.
"""

from __future__ import annotations

from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import Analysis, Conv, Input, leaves
from kernelwright.generate.expert.templates.triton_gemm import (
    _DOT_TYPES, _candidate, _dot, _first, _kwargs, _pow2, _precisions, _supported, _Tensors,
)


def _valid(analysis: Analysis) -> bool:
    """Whether a Conv's dtype, epilogue ops and tensors are ones the templates write."""
    p = analysis.pattern
    if not isinstance(p, Conv):
        return False
    tensors = [p.x, *(leaves(p.epilogue) if p.epilogue is not None else [])]
    return (p.dtype in ("float32", "bfloat16", "float16") and _supported(p.epilogue)
            and all(t.index < len(analysis.forward_args) for t in tensors if isinstance(t, Input))
            # "broadcast" is per output channel in a Conv (the pattern's contract).
            and all(t.layout in ("full", "scalar", "broadcast") for t in tensors))


def _gemm_only(p: Conv) -> bool:
    """A 1 x 1 convolution with stride 1 and no padding: a plain GEMM over [N, C, H * W]."""
    return p.kernel_size == (1, 1) and p.stride == (1, 1) and p.padding == (0, 0)


def _setup(analysis: Analysis) -> list[str]:
    """The forward's lines binding x, the weight, their sizes, the output's size and the output."""
    p = analysis.pattern
    assert isinstance(p, Conv)
    x = analysis.forward_args[p.x.index]
    (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
    return [f"kw_x = {x}.contiguous()", f"kw_weight = self.{p.weight.name}.contiguous()",
            "kw_batch, kw_c, kw_h, kw_wd = kw_x.shape", "kw_k, kw_cg, kw_r, kw_s = kw_weight.shape",
            f"kw_p = (kw_h + {2 * ph} - {dh} * (kw_r - 1) - 1) // {sh} + 1",
            f"kw_q = (kw_wd + {2 * pw} - {dw} * (kw_s - 1) - 1) // {sw} + 1",
            f"kw_out = torch.empty((kw_batch, kw_k, kw_p, kw_q), dtype={x}.dtype, device={x}.device)"]


def _geometry(p: Conv) -> str:
    """The filter's stride, padding and dilation, as the kernels' constexpr arguments."""
    (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
    return f"SH={sh}, SW={sw}, PH={ph}, PW={pw}, DH={dh}, DW={dw}"


def _doc(name: str, p: Conv, params: dict[str, Any]) -> str:
    r, s = p.kernel_size
    what = [f"{p.dtype} {r}x{s} convolution, stride {p.stride}, padding {p.padding}"]
    what += [f", dilation {p.dilation}"] * (p.dilation != (1, 1)) + [f", groups {p.groups}"] * (p.groups > 1)
    what += [" + bias"] * (p.bias is not None) + [" + epilogue"] * (p.epilogue is not None)
    return f"{name}: {''.join(what)}; " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."


# -- the implicit GEMM ------------------------------------------------------------------------------

_CONV = _Text('''
@triton.jit
def kw_conv(x_ptr, w_ptr, out_ptr, ${params}M, H, W, K, P, Q, R, S, C_G, K_G, stride_xn, stride_xc, stride_xh,
            stride_xw, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr,
            DW: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
            GROUP_M: tl.constexpr${constexprs}):
    # Grouped order: the GROUP_M row blocks of a group take each column block in turn, so programs
    # running together read the same input pixels and filters, from L2.
    pid = tl.program_id(0)
    group_id = tl.program_id(1)
    tiles = GROUP_M * tl.cdiv(K_G, BLOCK_N)
    first_m = pid // tiles * GROUP_M
    group_m = tl.minimum(tl.cdiv(M, BLOCK_M) - first_m, GROUP_M)
    pid_m = first_m + pid % tiles % group_m
    pid_n = pid % tiles // group_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < K_G
    channel = group_id * K_G + offs_n
    # Row m is output pixel (image, oh, ow); its input window starts at (ih0, iw0), in the padding when < 0.
    plane = P * Q
    image = offs_m // plane
    pixel = offs_m % plane
${rows}
    # B[kk, n] = weight[channel n][kk]: the weight's rows are the reduction, contiguous.
    w_cols = w_ptr + channel.to(tl.int64) * (C_G * R * S)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
${loop}
    mask = mask_m[:, None] & mask_n[None, :]
    offs = (image.to(tl.int64) * K * plane + pixel)[:, None] + (channel * plane)[None, :]
${store}
''')
_WINDOW = """    ih0 = pixel // Q * SH - PH
    iw0 = pixel % Q * SW - PW
    x_rows = x_ptr + image.to(tl.int64) * stride_xn + group_id * C_G * stride_xc"""
# x is contiguous within a plane (P = H, Q = W here): a pixel's offset is its index.
_PLANE = "    x_rows = x_ptr + image.to(tl.int64) * stride_xn + group_id * C_G * stride_xc + pixel"
_GEMM_LOOP = """    for c0 in range(0, C_G, BLOCK_K):
        mask_k = offs_k < C_G - c0
        a = tl.load(x_rows[:, None] + ((c0 + offs_k) * stride_xc)[None, :], mask=mask_m[:, None] & mask_k[None, :],
                    other=0.0)
        b = tl.load(w_cols[None, :] + (c0 + offs_k)[:, None], mask=mask_k[:, None] & mask_n[None, :], other=0.0)
"""
# One loop over (tap, channel slice) pairs rather than two nested loops: the compiler pipelines the
# innermost loop, and a group's channels are often only one or two slices.
_TAPS_LOOP = """    slices = tl.cdiv(C_G, BLOCK_K)
    for step in range(0, R * S * slices):
        tap = step // slices
        c0 = (step - tap * slices) * BLOCK_K
        ih = ih0 + tap // S * DH
        iw = iw0 + tap % S * DW
        inside = mask_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        mask_k = offs_k < C_G - c0
        a = tl.load((x_rows + ih * stride_xh + iw * stride_xw)[:, None] + ((c0 + offs_k) * stride_xc)[None, :],
                    mask=inside[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(w_cols[None, :] + ((c0 + offs_k) * (R * S) + tap)[:, None], mask=mask_k[:, None] & mask_n[None, :],
                    other=0.0)
"""
_FLAT_LOOP = """    taps = R * S
    for k0 in range(0, C_G * taps, BLOCK_K):
        kk = k0 + offs_k
        mask_k = kk < C_G * taps
        c = kk // taps
        tap = kk % taps
        ih = ih0[:, None] + (tap // S * DH)[None, :]
        iw = iw0[:, None] + (tap % S * DW)[None, :]
        inside = mask_m[:, None] & mask_k[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a = tl.load(x_rows[:, None] + (c * stride_xc)[None, :] + ih * stride_xh + iw * stride_xw, mask=inside,
                    other=0.0)
        b = tl.load(w_cols[None, :] + kk[:, None], mask=mask_k[:, None] & mask_n[None, :], other=0.0)
"""
_LOOPS = {"gemm": _GEMM_LOOP, "taps": _TAPS_LOOP, "flat": _FLAT_LOOP}


class ConvTemplate:
    name = "triton.conv"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return _valid(analysis) and not analysis.pattern.depthwise

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Conv)
        precisions = _precisions(analysis) if p.dtype == "float32" else ()
        narrow = p.dtype != "float32" or precisions[0] in ("bf16", "fp16")  # 2-byte operands: twice the tile
        channels = p.in_shape[1] // p.groups
        # A slice of the reduction: a tap's channels ("taps", the plain GEMM) or any BLOCK_K of all of it.
        taps = channels >= 16
        bk = _pow2(channels if taps or _gemm_only(p) else p.k, 16, 64 if narrow else 32)
        bm, bn = _pow2(p.m, 16, 128), _pow2(p.n // p.groups, 16, 128)
        space: dict[str, tuple[Any, ...]] = {
            "BLOCK_M": _first(bm, (128, 64, 256, 32, 16)),
            "BLOCK_N": _first(bn, (128, 64, 256, 32, 16)),
            "BLOCK_K": _first(bk, (64, 32, 128, 16) if narrow else (32, 64, 16)),
            "GROUP_M": (8, 1, 4, 16),
            "num_warps": _first(8 if bm * bn >= 128 * 128 else 4, (8, 4, 2)),
            "num_stages": (3, 4, 2),
        }
        if not _gemm_only(p):
            space["loop"] = ("taps", "flat") if taps else ("flat", "taps")
        if precisions:
            space["precision"] = precisions
        return space

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Conv)
        t = _Tensors(analysis, vector="broadcast", round_each_op=False)  # "broadcast": per output channel
        precision = params.get("precision")
        operands = _DOT_TYPES.get(p.dtype) or _DOT_TYPES.get(precision)
        widen = operands == "tl.bfloat16"
        loop = "gemm" if _gemm_only(p) else params["loop"]
        kernel = t.helpers + _CONV.substitute(
            params=t.params, constexprs=", WIDEN: tl.constexpr" if widen else "",
            rows=_PLANE if loop == "gemm" else _WINDOW, loop=_LOOPS[loop] + _dot(operands, precision, widen),
            store=t.finish("channel[None, :]", "mask_n[None, :]"))
        tiles = (f"triton.cdiv(kw_m, {params['BLOCK_M']}) * "
                 f"triton.cdiv(kw_k // kw_groups, {params['BLOCK_N']})")
        constants = (_kwargs(params, ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M"))
                     + (", WIDEN=WIDEN_BF16" if widen else ""))
        launch = [
            "kw_groups = kw_c // kw_cg", "kw_m = kw_batch * kw_p * kw_q",
            f"kw_conv[({tiles}, kw_groups)](kw_x, kw_weight, kw_out, {t.args}kw_m, kw_h, kw_wd, kw_k, kw_p, kw_q, "
            "kw_r, kw_s, kw_cg, kw_k // kw_groups, kw_x.stride(0), kw_x.stride(1), kw_x.stride(2), kw_x.stride(3), "
            f"{_geometry(p)}, {constants}, {_kwargs(params, ('num_warps', 'num_stages'))})"]
        return _candidate(analysis, kernel, _setup(analysis) + t.lines + launch, _doc(self.name, p, params), widen)


# -- the depthwise convolution ----------------------------------------------------------------------

_DEPTHWISE = _Text('''
@triton.jit
def kw_depthwise(x_ptr, w_ptr, out_ptr, ${params}C, H, W, P, Q, stride_xn, stride_xc, stride_xh, stride_xw,
                 R: tl.constexpr, S: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr,
                 PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr, BLOCK_P: tl.constexpr,
                 BLOCK_Q: tl.constexpr, WHOLE_ROWS: tl.constexpr):
    # One program: BLOCK_P output rows by BLOCK_Q output columns of one (image, channel) plane, the planes'
    # tiles in order. Rows and columns are the tile's two axes: no element divides its index into them.
    # WHOLE_ROWS (Q <= BLOCK_Q): the columns are the block's lanes, which the compiler knows are >= 0, so
    # it drops the padding checks that cannot fail; and the loads check x's bounds only, not the tile's
    # (an H200, MobileNetV2's 56 x 56 planes: 0.635 ms with column blocks and the tile's mask in every
    # load, 0.50 without either).
    pid = tl.program_id(0)
    if WHOLE_ROWS:
        plane_id = pid // tl.cdiv(P, BLOCK_P)
        oh = pid % tl.cdiv(P, BLOCK_P) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
        ow = tl.arange(0, BLOCK_Q)[None, :]
    else:
        col_blocks = tl.cdiv(Q, BLOCK_Q)
        tiles = tl.cdiv(P, BLOCK_P) * col_blocks
        plane_id = pid // tiles
        tile = pid % tiles
        oh = tile // col_blocks * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
        ow = tile % col_blocks * BLOCK_Q + tl.arange(0, BLOCK_Q)[None, :]
    channel = plane_id % C
    mask = (oh < P) & (ow < Q)
    ih0 = oh * SH - PH
    iw0 = ow * SW - PW
    x_plane = x_ptr + (plane_id // C).to(tl.int64) * stride_xn + channel * stride_xc
    w_taps = w_ptr + channel * (R * S)
    acc = tl.zeros((BLOCK_P, BLOCK_Q), dtype=tl.float32)
    for r in tl.static_range(R):
        ih = ih0 + r * DH
        row_inside = (ih >= 0) & (ih < H)  # a tile's rows past P read rows inside x, which are not stored
        for s in tl.static_range(S):
            iw = iw0 + s * DW
            v = tl.load(x_plane + ih * stride_xh + iw * stride_xw, mask=row_inside & (iw >= 0) & (iw < W), other=0.0)
            acc += v.to(tl.float32) * tl.load(w_taps + r * S + s).to(tl.float32)
    offs = plane_id.to(tl.int64) * (P * Q) + oh * Q + ow
${store}
''')


class DepthwiseTemplate:
    name = "triton.depthwise"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return _valid(analysis) and analysis.pattern.depthwise

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Conv)
        # A row's output columns in one block (up to 64), and about 256 pixels a tile on one warp: small
        # programs ran best on an H200 (MobileNetV2's 56 x 56 planes: 4 x 64 on 1 warp 65 % of the speed of
        # light, 8 x 64 on 2 warps 64 %, 8 x 64 on 4 warps 54 %; the 1-D blocks of 256 before, 33-41 %).
        block_q = _pow2(p.shape[3], 8, 64)  # the output's columns, Q
        return {"BLOCK_Q": _first(block_q, (64, 32, 128, 16, 8)),
                "BLOCK_P": _first(_pow2(256 // block_q, 1, 32), (4, 8, 2, 16, 1)), "num_warps": (1, 2, 4)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Conv)
        t = _Tensors(analysis, vector="broadcast", round_each_op=False)
        kernel = t.helpers + _DEPTHWISE.substitute(params=t.params, store=t.finish("channel", None))
        bp, bq = params["BLOCK_P"], params["BLOCK_Q"]
        launch = [
            f"kw_depthwise[(kw_batch * kw_c * triton.cdiv(kw_p, {bp}) * triton.cdiv(kw_q, {bq}),)](kw_x, kw_weight, "
            f"kw_out, {t.args}kw_c, kw_h, kw_wd, kw_p, kw_q, kw_x.stride(0), kw_x.stride(1), kw_x.stride(2), "
            f"kw_x.stride(3), R=kw_r, S=kw_s, {_geometry(p)}, BLOCK_P={bp}, BLOCK_Q={bq}, WHOLE_ROWS=kw_q <= {bq}, "
            f"num_warps={params['num_warps']})"]
        return _candidate(analysis, kernel, _setup(analysis) + t.lines + launch, _doc(self.name, p, params))


TEMPLATES = [DepthwiseTemplate(), ConvTemplate()]
