"""Triton templates for attention (the Attention pattern): a flash-attention forward, and a decode kernel.

Both compute softmax(scale * q @ k^T (+ causal mask)) @ v without writing the scores (but for the decode
kernel's split form for rounded scores, below): each program holds a block of query rows and walks the
keys in blocks of BLOCK_N, keeping per row the running max m and sum l of exp(score - m) and the output
accumulator, all in fp32; when a block raises a row's max, the row's sum and accumulator are rescaled by
exp(old max - new max) (the online softmax of the flash-attention papers). Exponentials are exp2 of
scores premultiplied by scale * log2(e). The output is the accumulator divided by the sum, written once
in the input dtype. Where the reference holds its scores in bf16 or fp16 (the pattern's rounds_scores: a
written-out 16-bit q @ k^T), the kernel rounds them alike, after the product and after the scale:
otherwise, for scores in the tens, the reference's own rounding alone moves its probabilities by more
than the tolerance. Such a reference also divides by the sum before it rounds the probabilities for
p @ v, so there the kernel walks the keys twice: each row's max and sum first, then the divided
probabilities into the accumulator (twice the q @ k^T work; rounding undivided ones differed from it by
more than the tolerance on an H200, where outputs are small sums of large terms, e.g. the first rows of
a causal mask).

triton.attention: one program per BLOCK_M query rows of one (batch, head). Key blocks wholly inside
the sequence (and, when causal, wholly at or before the block's first row) are read without masks;
the rest with them; when causal, key blocks after the block's last row are never read, and the row
blocks with the most work start first.

triton.attention_decode: for a few query rows (a decoding step) the work is reading k and v. The
query rows of all the query heads that share a kv head (grouped-query attention) are one block of
rows, so each kv block is read once for the group; the keys are split over SPLIT programs (flash-
decoding), each writing its rows' m, l and unnormalized accumulator to an fp32 workspace, and a
second kernel combines the SPLIT partials of each row. Where the reference rounds its probabilities
after dividing (above), the splits instead write out the rounded scores, 1/64 of k's bytes at head dim
128, and a second kernel reads them back with v (_DECODE_ROUNDED). On Llama-3-8B's decode (H200) that
took 0.195 ms (65 % of the speed of light; one split reading k twice, at the memory's speed) to 0.149
(85.5 %), where splitting the second kernel over the keys too, adding up its parts in a third, gave 0.151-0.16.

Precision: bf16 and fp16 tasks multiply on the tensor cores natively (the probabilities rounded to
the input dtype before p @ v, as the reference's own kernels do); fp32 tasks in IEEE fp32
(tl.dot's input_precision="ieee") unless the task's tolerance admits tf32 (the `precision`
parameter lists only what it admits, fastest first).

Parameters: BLOCK_M, BLOCK_N, num_warps, num_stages, (decode) SPLIT, (fp32) precision. Shapes,
strides and the head dim are read from the tensors at run time (shape variants change them); the
task's shape only chooses the defaults.
"""

from __future__ import annotations

import math
import textwrap
from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import Analysis, Attention
from kernelwright.generate.expert.templates.triton_gemm import _ROUND_BF16

_SMS = 132  # streaming multiprocessors of an H100 / H200
_DTYPES = ("float32", "bfloat16", "float16")
_MAX_HEAD_DIM = 256  # q and the accumulator stay in registers: BLOCK_M x head_dim of each
_VALUE_COLUMNS = 64  # head-dim columns of a kw_decode_values program (rounded scores, split)

# Shared jit helpers: a masked tile load, rounding to 16 bits, the dot, one key block.
_HELPERS = _Text('''
@triton.jit
def kw_tile(ptrs, mask_a, mask_b, CHECK_A: tl.constexpr, CHECK_B: tl.constexpr):
    # A 2-D tile, masked only along the axes that can run past the tensor (unmasked loads vectorize).
    if CHECK_A and CHECK_B:
        tile = tl.load(ptrs, mask=mask_a[:, None] & mask_b[None, :], other=0.0)
    elif CHECK_A:
        tile = tl.load(ptrs, mask=mask_a[:, None], other=0.0)
    elif CHECK_B:
        tile = tl.load(ptrs, mask=mask_b[None, :], other=0.0)
    else:
        tile = tl.load(ptrs)
    return tile


@triton.jit
def kw_narrow(x, dtype: tl.constexpr, WIDEN: tl.constexpr):
    # fp32 to the input dtype `dtype`, rounding to nearest even. The interpreter truncates to bfloat16
    # instead: there (WIDEN) the bits are rounded first, so that the cast is exact.
    if WIDEN:
        x = kw_round_bf16(x)
    return x.to(dtype)


@triton.jit
def kw_dot(a, b, acc, WIDEN: tl.constexpr):
    # Triton's interpreter (TRITON_INTERPRET=1, no GPU) multiplies bfloat16 tiles as their raw 16-bit
    # patterns; there they are widened to fp32 first (exact products, the same sums).
    if WIDEN:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc${precision})


@triton.jit
def kw_scores(q, k_ptrs, query, keys, mask_d, seq_k, scale, MASK_N: tl.constexpr, CAUSAL: tl.constexpr,
              PAD_D: tl.constexpr, ROUND: tl.constexpr, WIDEN: tl.constexpr):
    # One block of keys' scores in log2 units (exp2 of them is exp of the scores), -inf where masked; and
    # with ROUND the scores as the reference holds them (in the input dtype after the product and after
    # the scale, unmasked), which the decode kernels write out; without ROUND the fp32 products.
    mask_n = keys < seq_k
    k = kw_tile(k_ptrs, mask_d, mask_n, PAD_D, MASK_N)  # k^T: head dim down, keys across
    s = kw_dot(q, k, tl.zeros((q.shape[0], k.shape[1]), dtype=tl.float32), WIDEN)
    if ROUND:
        held = kw_narrow(kw_narrow(s, q.dtype, WIDEN).to(tl.float32) * scale, q.dtype, WIDEN)
        s = held.to(tl.float32) * 1.4426950408889634
    else:
        held = s
        s = s * (scale * 1.4426950408889634)
    return kw_masked(s, query, keys, mask_n, MASK_N, CAUSAL), held


@triton.jit
def kw_masked(s, query, keys, mask_n, MASK_N: tl.constexpr, CAUSAL: tl.constexpr):
    # A block of scores with -inf for keys past the sequence (MASK_N) and, when causal, after the row's query.
    if MASK_N:
        s = tl.where(mask_n[None, :], s, -float("inf"))
    if CAUSAL:
        s = tl.where(query[:, None] >= keys[None, :], s, -float("inf"))
    return s


@triton.jit
def kw_online(m_i, l_i, s):
    # The rows' max and sum of exp2(s - max) brought up to date with a block of scores (the online
    # softmax); also the block's exp2(s - max), and alpha, the factor that rescales what came before.
    m_new = tl.maximum(m_i, tl.max(s, 1))
    # A row that has seen only masked keys keeps max -inf; 0 stands in for it there, so that its
    # exponentials are exp2(-inf) = 0, not exp2(-inf + inf) = NaN.
    m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[:, None])
    return m_new, l_i * alpha + tl.sum(p, 1), p, alpha


@triton.jit
def kw_step(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, keys, mask_d, seq_k, scale, MASK_N: tl.constexpr,
            CAUSAL: tl.constexpr, PAD_D: tl.constexpr, ROUND: tl.constexpr, WIDEN: tl.constexpr,
            PASS: tl.constexpr):
    # One block of keys: its scores, then by PASS
    # 0: each row's max, sum and accumulator brought up to date (the online softmax);
    # 1: the max and sum only; 2: with the final max and sum, p normalized (as the reference has it,
    # before rounding it to the input dtype) into the accumulator.
    s, _ = kw_scores(q, k_ptrs, query, keys, mask_d, seq_k, scale, MASK_N, CAUSAL, PAD_D, ROUND, WIDEN)
    if PASS == 2:
        p = tl.exp2(s - m_i[:, None]) / l_i[:, None]
        alpha = tl.full(m_i.shape, 1.0, tl.float32)
    else:
        m_i, l_i, p, alpha = kw_online(m_i, l_i, s)
    if PASS != 1:
        v = kw_tile(v_ptrs, keys < seq_k, mask_d, MASK_N, PAD_D)
        acc = kw_dot(kw_narrow(p, v.dtype, WIDEN), v, acc * alpha[:, None], WIDEN)
    return acc, m_i, l_i


@triton.jit
def kw_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, offs_n, mask_d, seq_k, scale, lo, full, end, stride_kn,
            stride_vn, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, PAD_D: tl.constexpr, ROUND: tl.constexpr,
            WIDEN: tl.constexpr, PASS: tl.constexpr):
    # Keys [lo, end) in blocks: those before `full` without masks, the rest with them.
    for start in range(lo, full, BLOCK_N):
        acc, m_i, l_i = kw_step(acc, m_i, l_i, q, k_ptrs + start * stride_kn, v_ptrs + start * stride_vn, query,
                                start + offs_n, mask_d, seq_k, scale, False, False, PAD_D, ROUND, WIDEN, PASS)
    for start in range(full, end, BLOCK_N):
        acc, m_i, l_i = kw_step(acc, m_i, l_i, q, k_ptrs + start * stride_kn, v_ptrs + start * stride_vn, query,
                                start + offs_n, mask_d, seq_k, scale, True, CAUSAL, PAD_D, ROUND, WIDEN, PASS)
    return acc, m_i, l_i


@triton.jit
def kw_all_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, offs_n, mask_d, seq_k, scale, lo, full, end, stride_kn,
                stride_vn, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, PAD_D: tl.constexpr, ROUND: tl.constexpr,
                WIDEN: tl.constexpr):
    # The rows' accumulator over keys [lo, end), divided by the sum (ROUND) or not, with their max and sum.
    if ROUND:  # the reference rounds its probabilities after dividing: each row's max and sum first
        acc, m_i, l_i = kw_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, offs_n, mask_d, seq_k, scale, lo, full, end,
                                stride_kn, stride_vn, BLOCK_N, CAUSAL, PAD_D, ROUND, WIDEN, 1)
        m_i = tl.where(m_i == -float("inf"), 0.0, m_i)
        acc, m_i, l_i = kw_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, offs_n, mask_d, seq_k, scale, lo, full, end,
                                stride_kn, stride_vn, BLOCK_N, CAUSAL, PAD_D, ROUND, WIDEN, 2)
    else:
        acc, m_i, l_i = kw_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, offs_n, mask_d, seq_k, scale, lo, full, end,
                                stride_kn, stride_vn, BLOCK_N, CAUSAL, PAD_D, ROUND, WIDEN, 0)
    return acc, m_i, l_i
''')

_FLASH = '''
@triton.jit
def kw_attention(q_ptr, k_ptr, v_ptr, out_ptr, heads, group, seq_q, seq_k, scale,
                 stride_qz, stride_qh, stride_qm, stride_qd, stride_kz, stride_kh, stride_kn, stride_kd,
                 stride_vz, stride_vh, stride_vn, stride_vd, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, ROUND: tl.constexpr,
                 WIDEN: tl.constexpr):
    # Row blocks of one (batch, head) are neighbours in launch order: they read the same k and v, from L2.
    pid = tl.program_id(0)
    row_blocks = tl.cdiv(seq_q, BLOCK_M)
    zh = pid // row_blocks
    pid_m = pid % row_blocks
    if CAUSAL:  # the last row blocks read the most keys: they start first
        pid_m = row_blocks - 1 - pid_m
    z = (zh // heads).to(tl.int64)
    h = (zh % heads).to(tl.int64)
    kv = h // group
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = offs_m < seq_q
    mask_d = offs_d < HEAD_DIM
    q = kw_tile(q_ptr + z * stride_qz + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask_m, mask_d, True, HEAD_DIM != BLOCK_D)
    k_ptrs = k_ptr + z * stride_kz + kv * stride_kh + offs_d[:, None] * stride_kd + offs_n[None, :] * stride_kn
    v_ptrs = v_ptr + z * stride_vz + kv * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
    m_i = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    # Keys before `full` need no mask: inside the sequence and, when causal, at or before every row here.
    full = seq_k // BLOCK_N * BLOCK_N
    end = seq_k
    if CAUSAL:
        full = tl.minimum(full, pid_m * BLOCK_M // BLOCK_N * BLOCK_N)
        end = tl.minimum(seq_k, (pid_m + 1) * BLOCK_M)  # keys after the block's last row are never read
    acc, m_i, l_i = kw_all_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, offs_m, offs_n, mask_d, seq_k, scale, 0, full, end,
                                stride_kn, stride_vn, BLOCK_N, CAUSAL, HEAD_DIM != BLOCK_D, ROUND, WIDEN)
    if not ROUND:
        acc = acc / l_i[:, None]
    out = kw_narrow(acc, out_ptr.dtype.element_ty, WIDEN)
    out_ptrs = out_ptr + (zh.to(tl.int64) * seq_q + offs_m[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(out_ptrs, out, mask=mask_m[:, None] & mask_d[None, :])
'''

_DECODE_BLOCK = '''
@triton.jit
def kw_decode_block(heads, kv_heads, group, seq_q, seq_k, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    SPLIT: tl.constexpr, CAUSAL: tl.constexpr):
    # This program's rows, their (batch, kv head), and its split's keys [lo, hi) in whole blocks, those
    # before `full` needing no mask (never when causal: the rows' queries differ). Rows are (query head of
    # the group, query) pairs: row r is head kv * group + r // seq_q, query r % seq_q; out_rows are their
    # indices in the output [batch, heads, seq_q]. Launch order: row blocks (which share k and v), then
    # splits, then (batch, kv head).
    pid = tl.program_id(0)
    rows = group * seq_q
    row_blocks = tl.cdiv(rows, BLOCK_M)
    split = pid // row_blocks % SPLIT
    zk = pid // row_blocks // SPLIT
    z = (zk // kv_heads).to(tl.int64)
    kv = (zk % kv_heads).to(tl.int64)
    offs_r = pid % row_blocks * BLOCK_M + tl.arange(0, BLOCK_M)
    h = kv * group + offs_r // seq_q
    query = offs_r % seq_q
    share = tl.cdiv(tl.cdiv(seq_k, BLOCK_N), SPLIT) * BLOCK_N
    lo = split * share
    hi = tl.minimum(seq_k, lo + share)
    full = tl.maximum(lo, tl.minimum(hi, seq_k // BLOCK_N * BLOCK_N))
    if CAUSAL:
        full = lo
    return offs_r, offs_r < rows, z, kv, h, query, (z * heads + h) * seq_q + query, split, lo, full, hi
'''

_DECODE = _Text('''
@triton.jit
def kw_decode(q_ptr, k_ptr, v_ptr, out_ptr, ${partials}heads, kv_heads, group, seq_q, seq_k, scale,
              stride_qz, stride_qh, stride_qm, stride_qd, stride_kz, stride_kh, stride_kn, stride_kd,
              stride_vz, stride_vh, stride_vn, stride_vd, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SPLIT: tl.constexpr, CAUSAL: tl.constexpr,
              ROUND: tl.constexpr, WIDEN: tl.constexpr):
    offs_r, mask_r, z, kv, h, query, out_rows, split, lo, full, hi = kw_decode_block(
        heads, kv_heads, group, seq_q, seq_k, BLOCK_M, BLOCK_N, SPLIT, CAUSAL)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < HEAD_DIM
    q = kw_tile(q_ptr + z * stride_qz + h[:, None] * stride_qh + query[:, None] * stride_qm
                + offs_d[None, :] * stride_qd, mask_r, mask_d, True, HEAD_DIM != BLOCK_D)
    k_ptrs = k_ptr + z * stride_kz + kv * stride_kh + offs_d[:, None] * stride_kd + offs_n[None, :] * stride_kn
    v_ptrs = v_ptr + z * stride_vz + kv * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
    m_i = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    # With ROUND there is one split here (several are the kw_decode_scores path), and the accumulator
    # comes back divided.
    acc, m_i, l_i = kw_all_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, offs_n, mask_d, seq_k, scale, lo, full, hi,
                                stride_kn, stride_vn, BLOCK_N, CAUSAL, HEAD_DIM != BLOCK_D, ROUND, WIDEN)
    if SPLIT == 1 and not ROUND:
        acc = acc / l_i[:, None]
    mask = mask_r[:, None] & mask_d[None, :]
${store}
''')
_STORE_OUT = """    out = kw_narrow(acc, out_ptr.dtype.element_ty, WIDEN)
    tl.store(out_ptr + out_rows[:, None] * HEAD_DIM + offs_d[None, :], out, mask=mask)"""
# Partial results go to workspaces [rows, SPLIT] (m, l) and [rows, SPLIT, head_dim] (the accumulator).
_STORE_PART = """    part = out_rows * SPLIT + split
    tl.store(m_ptr + part, m_i, mask=mask_r)
    tl.store(l_ptr + part, l_i, mask=mask_r)
    tl.store(out_ptr + part[:, None] * HEAD_DIM + offs_d[None, :], acc, mask=mask)"""

# Split decoding where the reference rounds its probabilities after dividing by the sum (ROUND): a
# probability needs its row's final max and sum, which no split of the keys has alone. kw_decode_scores
# reads k once, split over the keys, and writes the scores as the reference holds them (16-bit,
# [rows, seq_k]: 1/64 of k at head dim 128) and each split's max and sum; kw_decode_values, split over the
# head dim, combines those into each row's final ones and reads the scores back with its columns of v.
# Together they read k and v once, where one program walking all the keys twice reads k twice.
_DECODE_ROUNDED = '''
@triton.jit
def kw_score_step(m_i, l_i, q, k_ptrs, s_ptrs, query, keys, mask_r, mask_d, seq_k, scale, MASK_N: tl.constexpr,
                  CAUSAL: tl.constexpr, PAD_D: tl.constexpr, WIDEN: tl.constexpr):
    # One block of keys: their scores written out as the reference holds them, and each row's max and sum.
    s, held = kw_scores(q, k_ptrs, query, keys, mask_d, seq_k, scale, MASK_N, CAUSAL, PAD_D, True, WIDEN)
    tl.store(s_ptrs, held, mask=mask_r[:, None] & (keys < seq_k)[None, :])
    m_i, l_i, _, _ = kw_online(m_i, l_i, s)
    return m_i, l_i


@triton.jit
def kw_value_step(acc, m_i, l_i, s_ptrs, v_ptrs, query, keys, mask_r, mask_d, seq_k, MASK_N: tl.constexpr,
                  CAUSAL: tl.constexpr, PAD_D: tl.constexpr, WIDEN: tl.constexpr):
    # One block of keys: their written scores as probabilities, divided by the rows' final sum (as the
    # reference has them, before rounding to the input dtype), into the accumulator.
    mask_n = keys < seq_k
    s = kw_tile(s_ptrs, mask_r, mask_n, True, MASK_N).to(tl.float32) * 1.4426950408889634
    s = kw_masked(s, query, keys, mask_n, MASK_N, CAUSAL)
    p = tl.exp2(s - m_i[:, None]) / l_i[:, None]
    v = kw_tile(v_ptrs, mask_n, mask_d, MASK_N, PAD_D)
    return kw_dot(kw_narrow(p, v.dtype, WIDEN), v, acc, WIDEN)


@triton.jit
def kw_decode_scores(q_ptr, k_ptr, s_ptr, m_ptr, l_ptr, heads, kv_heads, group, seq_q, seq_k, scale,
                     stride_qz, stride_qh, stride_qm, stride_qd, stride_kz, stride_kh, stride_kn, stride_kd,
                     HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                     SPLIT: tl.constexpr, CAUSAL: tl.constexpr, WIDEN: tl.constexpr):
    # This split's scores, written out, and each row's max and sum over them.
    offs_r, mask_r, z, kv, h, query, out_rows, split, lo, full, hi = kw_decode_block(
        heads, kv_heads, group, seq_q, seq_k, BLOCK_M, BLOCK_N, SPLIT, CAUSAL)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < HEAD_DIM
    q = kw_tile(q_ptr + z * stride_qz + h[:, None] * stride_qh + query[:, None] * stride_qm
                + offs_d[None, :] * stride_qd, mask_r, mask_d, True, HEAD_DIM != BLOCK_D)
    k_ptrs = k_ptr + z * stride_kz + kv * stride_kh + offs_d[:, None] * stride_kd + offs_n[None, :] * stride_kn
    s_ptrs = s_ptr + out_rows[:, None] * seq_k + offs_n[None, :]
    m_i = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for start in range(lo, full, BLOCK_N):
        m_i, l_i = kw_score_step(m_i, l_i, q, k_ptrs + start * stride_kn, s_ptrs + start, query, start + offs_n,
                                 mask_r, mask_d, seq_k, scale, False, False, HEAD_DIM != BLOCK_D, WIDEN)
    for start in range(full, hi, BLOCK_N):
        m_i, l_i = kw_score_step(m_i, l_i, q, k_ptrs + start * stride_kn, s_ptrs + start, query, start + offs_n,
                                 mask_r, mask_d, seq_k, scale, True, CAUSAL, HEAD_DIM != BLOCK_D, WIDEN)
    part = out_rows * SPLIT + split
    tl.store(m_ptr + part, m_i, mask=mask_r)
    tl.store(l_ptr + part, l_i, mask=mask_r)


@triton.jit
def kw_decode_values(s_ptr, v_ptr, m_ptr, l_ptr, out_ptr, heads, kv_heads, group, seq_q, seq_k,
                     stride_vz, stride_vh, stride_vn, stride_vd, HEAD_DIM: tl.constexpr, BLOCK_DV: tl.constexpr,
                     COLUMNS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SPLIT: tl.constexpr,
                     CAUSAL: tl.constexpr, WIDEN: tl.constexpr):
    # Each row's final max and sum from its SPLIT splits', then the probabilities of all its keys times
    # BLOCK_DV of v's columns: the output's columns, written once, with no partial results to add up. The
    # programs split the head dim (COLUMNS blocks), not the keys: kw_decode_block's split is the column
    # block here. Split 0 holds key 0, which every row keeps, so each row's max is finite; padding rows
    # get 0 and 1.
    offs_r, mask_r, z, kv, h, query, out_rows, column, _, _, _ = kw_decode_block(
        heads, kv_heads, group, seq_q, seq_k, BLOCK_M, BLOCK_N, COLUMNS, CAUSAL)
    offs_s = tl.arange(0, SPLIT)
    m_s = tl.load(m_ptr + out_rows[:, None] * SPLIT + offs_s[None, :], mask=mask_r[:, None], other=0.0)
    l_s = tl.load(l_ptr + out_rows[:, None] * SPLIT + offs_s[None, :], mask=mask_r[:, None], other=1.0)
    m_i = tl.max(m_s, 1)
    l_i = tl.sum(l_s * tl.exp2(m_s - m_i[:, None]), 1)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = column * BLOCK_DV + tl.arange(0, BLOCK_DV)
    mask_d = offs_d < HEAD_DIM
    v_ptrs = v_ptr + z * stride_vz + kv * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
    s_ptrs = s_ptr + out_rows[:, None] * seq_k + offs_n[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_DV), dtype=tl.float32)
    full = seq_k // BLOCK_N * BLOCK_N
    if CAUSAL:  # the rows' queries differ: every block is masked
        full = 0
    for start in range(0, full, BLOCK_N):
        acc = kw_value_step(acc, m_i, l_i, s_ptrs + start, v_ptrs + start * stride_vn, query, start + offs_n,
                            mask_r, mask_d, seq_k, False, False, HEAD_DIM % BLOCK_DV != 0, WIDEN)
    for start in range(full, seq_k, BLOCK_N):
        acc = kw_value_step(acc, m_i, l_i, s_ptrs + start, v_ptrs + start * stride_vn, query, start + offs_n,
                            mask_r, mask_d, seq_k, True, CAUSAL, HEAD_DIM % BLOCK_DV != 0, WIDEN)
    out = kw_narrow(acc, out_ptr.dtype.element_ty, WIDEN)
    tl.store(out_ptr + out_rows[:, None] * HEAD_DIM + offs_d[None, :], out, mask=mask_r[:, None] & mask_d[None, :])
'''
_COMBINE = '''
@triton.jit
def kw_combine(part_ptr, m_ptr, l_ptr, out_ptr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
               SPLIT: tl.constexpr, WIDEN: tl.constexpr):
    # One output row from its SPLIT partial results, each rescaled to the row's overall max. A split
    # that held none of the row's keys has m = -inf and weighs 0; split 0 holds key 0, which every
    # row keeps, so the overall max is finite.
    row = tl.program_id(0).to(tl.int64)
    offs_s = tl.arange(0, SPLIT)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < HEAD_DIM
    m = tl.load(m_ptr + row * SPLIT + offs_s)
    l = tl.load(l_ptr + row * SPLIT + offs_s)
    w = tl.exp2(m - tl.max(m, 0))
    acc = tl.load(part_ptr + (row * SPLIT + offs_s)[:, None] * HEAD_DIM + offs_d[None, :], mask=mask_d[None, :],
                  other=0.0)
    out = kw_narrow(tl.sum(acc * w[:, None], 0) / tl.sum(l * w, 0), out_ptr.dtype.element_ty, WIDEN)
    tl.store(out_ptr + row * HEAD_DIM + offs_d, out, mask=mask_d)
'''


def _pow2(x: int, low: int, high: int) -> int:
    """The power of two at least x, within [low, high]."""
    return min(high, max(low, 1 << max(0, x - 1).bit_length()))


def _first(value: Any, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """`values` with `value` first: the default."""
    return (value, *[v for v in values if v != value])


def _valid(analysis: Analysis) -> bool:
    p = analysis.pattern
    return (isinstance(p, Attention) and p.dtype in _DTYPES and 1 <= p.head_dim <= _MAX_HEAD_DIM
            and all(x.index < len(analysis.forward_args) for x in (p.q, p.k, p.v)))


def _precisions(analysis: Analysis) -> tuple[str, ...]:
    """What an fp32 task may multiply in, fastest first: tf32 only where its tolerance admits it."""
    return ("tf32", "ieee") if (analysis.precision or "fp32") != "fp32" else ("ieee",)


def _common_space(analysis: Analysis, space: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    if analysis.pattern.dtype == "float32":
        space["precision"] = _precisions(analysis)
    return space


def _candidate(analysis: Analysis, kernels: str, launch: list[str], doc: str) -> str:
    """The candidate file: imports, kernels, and ModelNew (the task's __init__) whose forward launches them.

    `launch` may use kw_q, kw_k, kw_v (as [batch, heads, seq, head_dim] views), kw_out, kw_z, kw_heads,
    kw_kv_heads, kw_group, kw_seq_q, kw_seq_k, kw_d, kw_block_d, kw_scale, {strides} and {options}."""
    p = analysis.pattern
    assert isinstance(p, Attention)
    q, k, v = (analysis.forward_args[x.index] for x in (p.q, p.k, p.v))
    widen = p.dtype == "bfloat16"
    scale = "1.0 / math.sqrt(kw_d)" if p.scale is None else repr(float(p.scale))
    lines = [f"kw_{name} = {x}.reshape(-1, {x}.shape[-3], {x}.shape[-2], {x}.shape[-1])"
             for name, x in (("q", q), ("k", k), ("v", v))]
    lines += ["kw_z, kw_heads, kw_seq_q, kw_d = kw_q.shape", "kw_kv_heads, kw_seq_k = kw_k.shape[1], kw_k.shape[2]",
              "kw_group = kw_heads // kw_kv_heads", "kw_block_d = max(16, triton.next_power_of_2(kw_d))",
              f"kw_scale = {scale}",
              f"kw_out = torch.empty({q}.shape, dtype={q}.dtype, device={q}.device)"]
    strides = ("kw_q.stride(0), kw_q.stride(1), kw_q.stride(2), kw_q.stride(3), kw_k.stride(0), kw_k.stride(1), "
               "kw_k.stride(2), kw_k.stride(3), kw_v.stride(0), kw_v.stride(1), kw_v.stride(2), kw_v.stride(3)")
    options = (f"HEAD_DIM=kw_d, BLOCK_D=kw_block_d, CAUSAL={p.causal}, ROUND={p.rounds_scores}, "
               f"WIDEN={_widen(p)}")
    lines += [line.replace("{strides}", strides).replace("{options}", options) for line in launch]
    lines.append("return kw_out")
    own = ["import os"] * widen + ["import math", "import torch", "import torch.nn as nn", "import triton",
                                   "import triton.language as tl"]
    imports = [analysis.imports.strip(), *(line for line in own if line not in analysis.imports.splitlines())]
    flag = ("\n# Under Triton's CPU interpreter bfloat16 is worked around: see kw_dot and kw_narrow.\n"
            'WIDEN_BF16 = os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on", "yes")\n'
            if widen else "")
    init = textwrap.indent(textwrap.dedent(analysis.init_source).strip(), " " * 4)
    return (f'"""{doc}"""\n' + "\n".join(filter(None, imports)) + f"\n{flag}\n{kernels}\n\nclass ModelNew(nn.Module):\n"
            f"{init}\n\n    def forward(self, {', '.join(analysis.forward_args)}):\n"
            f"{textwrap.indent(chr(10).join(lines), ' ' * 8)}\n")


def _widen(p: Attention) -> str:
    """The WIDEN argument: the candidate's interpreter flag for bf16 tasks, False otherwise."""
    return "WIDEN_BF16" if p.dtype == "bfloat16" else "False"


def _helpers(params: dict[str, Any]) -> str:
    precision = params.get("precision")
    # kw_narrow rounds by triton.gemm's kw_round_bf16 (the same bits, one helper).
    return _ROUND_BF16 + _HELPERS.substitute(precision=f', input_precision="{precision}"' if precision else "")


def _doc(name: str, p: Attention, params: dict[str, Any]) -> str:
    what = (f"{'causal ' if p.causal else ''}{p.dtype} attention, head dim {p.head_dim}"
            + (f", {p.group} query heads per kv head" if p.group > 1 else ""))
    return f"{name}: {what}; " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."


def _kwargs(params: dict[str, Any], names: tuple[str, ...]) -> str:
    return ", ".join(f"{k}={params[k]}" for k in names)


# (BLOCK_M, BLOCK_N, num_warps, num_stages) by operands ("16-bit", or an fp32 task's precision) and head dim
# (<= 64, <= 128, <= 256): the largest tiles that compile for sm_90 without spilling registers (ptxas -v).
# fp32 multiplied in IEEE runs on the FMA units and holds its operands in registers: small tiles.
_FLASH_DEFAULTS = {
    "16-bit": ((128, 64, 4, 3), (128, 64, 8, 3), (64, 32, 8, 2)),
    "tf32": ((128, 64, 8, 2), (128, 32, 8, 2), (64, 16, 8, 2)),
    "ieee": ((64, 32, 8, 2), (32, 16, 8, 2), (16, 16, 8, 1)),
}


class FlashAttentionTemplate:
    name = "triton.attention"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return _valid(analysis)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Attention)
        kind = _precisions(analysis)[0] if p.dtype == "float32" else "16-bit"
        bm, bn, warps, stages = _FLASH_DEFAULTS[kind][0 if p.head_dim <= 64 else 1 if p.head_dim <= 128 else 2]
        # Fewer programs than SMs leave some idle: smaller row blocks, more programs.
        while bm > 32 and math.ceil(p.shape[2] / bm) * p.shape[0] * p.shape[1] < _SMS:
            bm //= 2
        return _common_space(analysis, {
            "BLOCK_M": _first(bm, (128, 64, 32, 16)), "BLOCK_N": _first(bn, (64, 128, 32, 16)),
            "num_warps": _first(warps, (4, 8, 2)), "num_stages": _first(stages, (3, 2, 4, 1))})

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Attention)
        grid = f"triton.cdiv(kw_seq_q, {params['BLOCK_M']}) * kw_z * kw_heads"
        launch = [(f"kw_attention[({grid},)](kw_q, kw_k, kw_v, kw_out, kw_heads, kw_group, kw_seq_q, kw_seq_k, "
                   f"kw_scale, {{strides}}, {{options}}, "
                   f"{_kwargs(params, ('BLOCK_M', 'BLOCK_N', 'num_warps', 'num_stages'))})")]
        return _candidate(analysis, _helpers(params) + _FLASH, launch, _doc(self.name, p, params))


class DecodeAttentionTemplate:
    name = "triton.attention_decode"
    backend = "triton"
    MAX_SEQ_Q = 16  # query rows per head it is written for; longer queries are the flash kernel's

    def matches(self, analysis: Analysis) -> bool:
        return _valid(analysis) and analysis.pattern.shape[2] <= self.MAX_SEQ_Q

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Attention)
        narrow = p.dtype != "float32"
        rows = p.group * p.shape[2]
        bm = _pow2(rows, 16, 64)
        bn = 64 if p.head_dim <= 128 else 32
        # Enough programs to keep several loads in flight on every SM, each split keeping two key blocks.
        programs = p.shape[0] * p.kv_heads * math.ceil(rows / bm)
        wanted = _pow2(math.ceil(4 * _SMS / programs), 1, 32)
        split = max(1, min(wanted, 1 << max(0, (p.shape[3] // (2 * bn)).bit_length() - 1)))
        return _common_space(analysis, {
            "BLOCK_M": _first(bm, (16, 32, 64)), "BLOCK_N": _first(bn, (64, 128, 32, 16)),
            "SPLIT": _first(split, (1, 2, 4, 8, 16, 32)), "num_warps": _first(4 if narrow else 8, (4, 8, 2)),
            "num_stages": _first(3 if narrow else 2, (3, 2, 4, 1))})

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Attention)
        split = int(params["SPLIT"])
        programs = f"triton.cdiv(kw_group * kw_seq_q, {params['BLOCK_M']}) * {split} * kw_z * kw_kv_heads"
        blocks = _kwargs(params, ("BLOCK_M", "BLOCK_N", "SPLIT", "num_warps", "num_stages"))
        kernels = _helpers(params) + _DECODE_BLOCK
        rows = "kw_z * kw_heads * kw_seq_q"
        stats = [f"kw_m = torch.empty(({rows}, {split}), dtype=torch.float32, device=kw_q.device)",
                 f"kw_l = torch.empty(({rows}, {split}), dtype=torch.float32, device=kw_q.device)"]
        if split > 1 and p.rounds_scores:
            kernels += _DECODE_ROUNDED
            common = "kw_heads, kw_kv_heads, kw_group, kw_seq_q, kw_seq_k"
            flags = f"CAUSAL={p.causal}, WIDEN={_widen(p)}"
            columns = f"triton.cdiv(kw_group * kw_seq_q, {params['BLOCK_M']}) * kw_columns * kw_z * kw_kv_heads"
            launch = [f"kw_s = torch.empty(({rows}, kw_seq_k), dtype=kw_q.dtype, device=kw_q.device)", *stats,
                      (f"kw_decode_scores[({programs},)](kw_q, kw_k, kw_s, kw_m, kw_l, {common}, kw_scale, "
                       "kw_q.stride(0), kw_q.stride(1), kw_q.stride(2), kw_q.stride(3), "
                       "kw_k.stride(0), kw_k.stride(1), kw_k.stride(2), kw_k.stride(3), "
                       f"HEAD_DIM=kw_d, BLOCK_D=kw_block_d, {blocks}, {flags})"),
                      f"kw_block_dv = min({_VALUE_COLUMNS}, kw_block_d)",
                      "kw_columns = triton.cdiv(kw_d, kw_block_dv)",
                      (f"kw_decode_values[({columns},)](kw_s, kw_v, kw_m, kw_l, kw_out, {common}, "
                       "kw_v.stride(0), kw_v.stride(1), kw_v.stride(2), kw_v.stride(3), HEAD_DIM=kw_d, "
                       f"BLOCK_DV=kw_block_dv, COLUMNS=kw_columns, {blocks}, {flags})")]
            return _candidate(analysis, kernels, launch, _doc(self.name, p, params))
        kernels += _DECODE.substitute(partials="m_ptr, l_ptr, " if split > 1 else "",
                                      store=_STORE_PART if split > 1 else _STORE_OUT)
        args = "kw_q, kw_k, kw_v, " + ("kw_part, kw_m, kw_l, " if split > 1 else "kw_out, ")
        launch = [(f"kw_decode[({programs},)]({args}kw_heads, kw_kv_heads, kw_group, kw_seq_q, kw_seq_k, "
                   f"kw_scale, {{strides}}, {{options}}, {blocks})")]
        if split > 1:
            kernels += _COMBINE
            launch = [f"kw_part = torch.empty(({rows}, {split}, kw_d), dtype=torch.float32, device=kw_q.device)",
                      *stats, *launch,
                      (f"kw_combine[({rows},)](kw_part, kw_m, kw_l, kw_out, HEAD_DIM=kw_d, BLOCK_D=kw_block_d, "
                       f"SPLIT={split}, WIDEN={_widen(p)}, num_warps=4)")]
        return _candidate(analysis, kernels, launch, _doc(self.name, p, params))


# The decode kernel first: where both match (a few query rows), it is the first draft.
TEMPLATES = [DecodeAttentionTemplate(), FlashAttentionTemplate()]
