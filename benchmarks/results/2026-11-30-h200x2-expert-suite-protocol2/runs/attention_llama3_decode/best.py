"""triton.attention_decode: bfloat16 attention, head dim 128, 4 query heads per kv head; BLOCK_M=16, BLOCK_N=64, SPLIT=1, num_warps=4, num_stages=3."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
import os
import triton
import triton.language as tl

# Under Triton's CPU interpreter bfloat16 is worked around: see kw_dot and kw_narrow.
WIDEN_BF16 = os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on", "yes")


@triton.jit
def kw_round_bf16(x):
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.to(tl.float32, bitcast=True)

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
    return tl.dot(a, b, acc)


@triton.jit
def kw_step(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, keys, mask_d, seq_k, scale, MASK_N: tl.constexpr,
            CAUSAL: tl.constexpr, PAD_D: tl.constexpr, ROUND: tl.constexpr, WIDEN: tl.constexpr,
            PASS: tl.constexpr):
    # One block of keys: its scores (in log2 units: exp2 of them is exp of the scores), then by PASS
    # 0: each row's max, sum and accumulator brought up to date (the online softmax);
    # 1: the max and sum only; 2: with the final max and sum, p normalized (as the reference has it,
    # before rounding it to the input dtype) into the accumulator.
    mask_n = keys < seq_k
    k = kw_tile(k_ptrs, mask_d, mask_n, PAD_D, MASK_N)  # k^T: head dim down, keys across
    s = kw_dot(q, k, tl.zeros((q.shape[0], k.shape[1]), dtype=tl.float32), WIDEN)
    if ROUND:  # as the reference holds them: in the input dtype after the product and after the scale
        s = kw_narrow(s, q.dtype, WIDEN).to(tl.float32) * scale
        s = kw_narrow(s, q.dtype, WIDEN).to(tl.float32) * 1.4426950408889634
    else:
        s = s * (scale * 1.4426950408889634)
    if MASK_N:
        s = tl.where(mask_n[None, :], s, -float("inf"))
    if CAUSAL:
        s = tl.where(query[:, None] >= keys[None, :], s, -float("inf"))
    if PASS == 2:
        p = tl.exp2(s - m_i[:, None]) / l_i[:, None]
        alpha = tl.full(m_i.shape, 1.0, tl.float32)
    else:
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # A row that has seen only masked keys keeps max -inf; 0 stands in for it there, so that its
        # exponentials are exp2(-inf) = 0, not exp2(-inf + inf) = NaN.
        m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        m_i = m_new
    if PASS != 1:
        v = kw_tile(v_ptrs, mask_n, mask_d, MASK_N, PAD_D)
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

@triton.jit
def kw_decode(q_ptr, k_ptr, v_ptr, out_ptr, heads, kv_heads, group, seq_q, seq_k, scale,
              stride_qz, stride_qh, stride_qm, stride_qd, stride_kz, stride_kh, stride_kn, stride_kd,
              stride_vz, stride_vh, stride_vn, stride_vd, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SPLIT: tl.constexpr, CAUSAL: tl.constexpr,
              ROUND: tl.constexpr, WIDEN: tl.constexpr):
    # Rows are (query head of the group, query) pairs: row r is head kv * group + r // seq_q, query r % seq_q.
    # Launch order: row blocks (which share k and v), then splits, then (batch, kv head).
    pid = tl.program_id(0)
    rows = group * seq_q
    row_blocks = tl.cdiv(rows, BLOCK_M)
    pid_m = pid % row_blocks
    split = pid // row_blocks % SPLIT
    zk = pid // row_blocks // SPLIT
    z = (zk // kv_heads).to(tl.int64)
    kv = (zk % kv_heads).to(tl.int64)
    offs_r = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_r = offs_r < rows
    mask_d = offs_d < HEAD_DIM
    h = kv * group + offs_r // seq_q
    query = offs_r % seq_q
    q = kw_tile(q_ptr + z * stride_qz + h[:, None] * stride_qh + query[:, None] * stride_qm
                + offs_d[None, :] * stride_qd, mask_r, mask_d, True, HEAD_DIM != BLOCK_D)
    k_ptrs = k_ptr + z * stride_kz + kv * stride_kh + offs_d[:, None] * stride_kd + offs_n[None, :] * stride_kn
    v_ptrs = v_ptr + z * stride_vz + kv * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
    m_i = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    # This split's keys, [lo, hi), in whole blocks; those before `full` need no mask (never when causal:
    # the rows' queries differ).
    share = tl.cdiv(tl.cdiv(seq_k, BLOCK_N), SPLIT) * BLOCK_N
    lo = split * share
    hi = tl.minimum(seq_k, lo + share)
    full = tl.maximum(lo, tl.minimum(hi, seq_k // BLOCK_N * BLOCK_N))
    if CAUSAL:
        full = lo
    # With ROUND there is one split (SPLIT == 1: the space allows no other), and the accumulator comes back divided.
    acc, m_i, l_i = kw_all_keys(acc, m_i, l_i, q, k_ptrs, v_ptrs, query, offs_n, mask_d, seq_k, scale, lo, full, hi,
                                stride_kn, stride_vn, BLOCK_N, CAUSAL, HEAD_DIM != BLOCK_D, ROUND, WIDEN)
    if SPLIT == 1 and not ROUND:
        acc = acc / l_i[:, None]
    out_rows = (z * heads + h) * seq_q + query  # the row's index in the output [batch, heads, seq_q]
    mask = mask_r[:, None] & mask_d[None, :]
    out = kw_narrow(acc, out_ptr.dtype.element_ty, WIDEN)
    tl.store(out_ptr + out_rows[:, None] * HEAD_DIM + offs_d[None, :], out, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k_cache, v_cache):
        kw_q = q.reshape(-1, q.shape[-3], q.shape[-2], q.shape[-1])
        kw_k = k_cache.reshape(-1, k_cache.shape[-3], k_cache.shape[-2], k_cache.shape[-1])
        kw_v = v_cache.reshape(-1, v_cache.shape[-3], v_cache.shape[-2], v_cache.shape[-1])
        kw_z, kw_heads, kw_seq_q, kw_d = kw_q.shape
        kw_kv_heads, kw_seq_k = kw_k.shape[1], kw_k.shape[2]
        kw_group = kw_heads // kw_kv_heads
        kw_block_d = max(16, triton.next_power_of_2(kw_d))
        kw_scale = 1.0 / math.sqrt(kw_d)
        kw_out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        kw_decode[(triton.cdiv(kw_group * kw_seq_q, 16) * 1 * kw_z * kw_kv_heads,)](kw_q, kw_k, kw_v, kw_out, kw_heads, kw_kv_heads, kw_group, kw_seq_q, kw_seq_k, kw_scale, kw_q.stride(0), kw_q.stride(1), kw_q.stride(2), kw_q.stride(3), kw_k.stride(0), kw_k.stride(1), kw_k.stride(2), kw_k.stride(3), kw_v.stride(0), kw_v.stride(1), kw_v.stride(2), kw_v.stride(3), HEAD_DIM=kw_d, BLOCK_D=kw_block_d, CAUSAL=False, ROUND=True, WIDEN=WIDEN_BF16, BLOCK_M=16, BLOCK_N=64, SPLIT=1, num_warps=4, num_stages=3)
        return kw_out
