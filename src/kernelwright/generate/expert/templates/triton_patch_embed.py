"""Triton template for ViT's patch embedding (the PatchEmbed pattern): one GEMM kernel writing the whole output.

triton.patch_embed: a convolution whose stride equals its kernel, with no padding, is a matrix product of
non-overlapping patches: rows are the patches (M = N * P, image by image, row-major over the patch grid),
columns the embedding dims (D), the reduction each patch's (channel, row, column) pixels (C * ph * pw), the
weight's own order. The patch tile is gathered from x in place (no im2col buffer): a row's address is
its patch's corner and a column's its offset inside the patch, so every address is a row part plus a
column part, with nothing to mask but the matrix's edges; ph * pw consecutive columns are ph runs of pw
contiguous pixels. The weight [D, C, ph, pw] is read in place as the transposed B. Programs take tiles in
groups of GROUP_M row blocks (programs running together share weight columns and image rows through L2),
as triton.gemm does.

The epilogue adds the bias and the position embedding's row 1 + p to the fp32 accumulator and writes
output row (image, 1 + p) once, in the output dtype: the flatten, transpose and torch.cat of the reference
are only where the rows go. The class token rows (image, 0) = cls_token + pos_embed[0] are written by the
programs whose tile holds an image's first patch, a masked store of the same tile shape, so one launch
writes the whole [N, 1 + P, D] output.

Precision: as triton.gemm and triton.conv. fp32 tasks multiply in IEEE fp32 unless the task admits less
(PyTorch's own fp32 convolutions run in TF32, which the evaluator admits: `precision` lists what the task
admits, fastest first); bf16 and fp16 tasks use the tensor cores natively; accumulation is fp32.

Parameters: BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages, (fp32) precision. N, C, H, W, D and
the patch size are read from the tensors at run time (shape variants change them); the task's shapes only
choose the defaults.
"""

from __future__ import annotations

from typing import Any

from kernelwright.generate.expert.patterns import Analysis, PatchEmbed
from kernelwright.generate.expert.templates.triton_gemm import (
    _DOT_TYPES,
    _candidate,
    _dot,
    _first,
    _kwargs,
    _pow2,
    _precisions,
)

_KERNEL = '''
@triton.jit
def kw_patch_embed(x_ptr, w_ptr, ${bias_param}cls_ptr, pos_ptr, out_ptr, M, D, C, H, W, P, WP,
                   PH: tl.constexpr, PW: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr${constexprs}):
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
${dot}
    mask = mask_m[:, None] & mask_n[None, :]
    # Output row (b, 1 + p) of [N, 1 + P, D]; position embedding row 1 + p.
    token = patch + 1
    value = acc
${bias}
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
'''
# The convolution's bias first, then the position embedding: the reference's order of additions.
_BIAS = "    value += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]"


def _valid(analysis: Analysis) -> bool:
    p = analysis.pattern
    return (isinstance(p, PatchEmbed) and p.dtype in ("float32", "bfloat16", "float16")
            and p.x.index < len(analysis.forward_args))


class PatchEmbedTemplate:
    name = "triton.patch_embed"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return _valid(analysis)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, PatchEmbed)
        precisions = _precisions(analysis) if p.dtype == "float32" else ()
        narrow = p.dtype != "float32" or precisions[0] in ("bf16", "fp16")  # 2-byte operands: twice the tile
        # ViT-B/16 on an H100: M = 100352, N = K = 768; 128 x 128 tiles (4704 of them) fill the SMs many times.
        bm, bn = _pow2(p.m, 16, 128), _pow2(p.n, 16, 128)
        bk = _pow2(p.k, 16, 64 if narrow else 32)
        space: dict[str, tuple[Any, ...]] = {
            "BLOCK_M": _first(bm, (128, 64, 256, 32, 16)),
            "BLOCK_N": _first(bn, (128, 256, 64, 32, 16)),
            "BLOCK_K": _first(bk, (64, 32, 128, 16) if narrow else (32, 64, 16)),
            "GROUP_M": (8, 1, 4, 16),
            "num_warps": _first(8 if bm * bn >= 128 * 128 else 4, (8, 4, 2)),
            "num_stages": (3, 4, 2),
        }
        if precisions:
            space["precision"] = precisions
        return space

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, PatchEmbed)
        precision = params.get("precision")
        operands = _DOT_TYPES.get(p.dtype) or _DOT_TYPES.get(precision)
        widen = operands == "tl.bfloat16"
        kernel = (_KERNEL.replace("${bias_param}", "bias_ptr, " if p.bias is not None else "")
                  .replace("${constexprs}", ", WIDEN: tl.constexpr" if widen else "")
                  .replace("${dot}", _dot(operands, precision, widen))
                  .replace("${bias}", _BIAS if p.bias is not None else ""))
        x = analysis.forward_args[p.x.index]
        tiles = f"triton.cdiv(kw_m, {params['BLOCK_M']}) * triton.cdiv(kw_d, {params['BLOCK_N']})"
        constants = (_kwargs(params, ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M"))
                     + (", WIDEN=WIDEN_BF16" if widen else ""))
        forward = [
            f"kw_x = {x}.contiguous()", f"kw_weight = self.{p.weight.name}.contiguous()",
            *([f"kw_bias = self.{p.bias.name}.contiguous()"] if p.bias is not None else []),
            f"kw_cls = self.{p.cls_token.name}.contiguous()", f"kw_pos = self.{p.pos_embed.name}.contiguous()",
            "kw_batch, kw_c, kw_h, kw_wd = kw_x.shape", "kw_d, _, kw_ph, kw_pw = kw_weight.shape",
            "kw_hp, kw_wp = kw_h // kw_ph, kw_wd // kw_pw", "kw_p = kw_hp * kw_wp", "kw_m = kw_batch * kw_p",
            f"kw_out = torch.empty((kw_batch, kw_p + 1, kw_d), dtype={x}.dtype, device={x}.device)",
            (f"kw_patch_embed[({tiles},)](kw_x, kw_weight, {'kw_bias, ' if p.bias is not None else ''}kw_cls, "
             "kw_pos, kw_out, kw_m, kw_d, kw_c, kw_h, kw_wd, kw_p, kw_wp, PH=kw_ph, PW=kw_pw, "
             f"{constants}, {_kwargs(params, ('num_warps', 'num_stages'))})")]
        (ph, pw), (n, c, h, w) = p.patch, p.in_shape
        doc = (f"{self.name}: {p.dtype} {ph}x{pw} patch embedding of [{n}, {c}, {h}, {w}] into {list(p.shape)}, "
               "class token and position embedding fused; " + ", ".join(f"{k}={v}" for k, v in params.items()) + ".")
        return _candidate(analysis, kernel, forward, doc, widen)


TEMPLATES = [PatchEmbedTemplate()]
