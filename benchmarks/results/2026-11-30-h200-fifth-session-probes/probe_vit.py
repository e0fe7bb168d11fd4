"""Probe (fifth session): can a Triton kernel reproduce ViT attention's bf16 scores and probabilities bit for bit?

1. scores: torch's (q * d^-0.5) @ k^T in bf16 against tl.dot of the same tiles rounded to bf16, per tile shape;
2. probabilities: torch.softmax of those bf16 scores against an emulation of its warp softmax (expf,
   per-lane sums over 32-key strides then a butterfly, division rounded to nearest), rounded to bf16."""
import os, sys, torch, triton, triton.language as tl
from triton.language.extra import libdevice


@triton.jit
def scores_kernel(q, k, out, seq, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64); m = tl.program_id(1) * BM + tl.arange(0, BM); n = tl.program_id(2) * BN + tl.arange(0, BN)
    d = tl.arange(0, D)
    qt = tl.load(q + bh * seq * D + m[:, None] * D + d[None, :], mask=m[:, None] < seq, other=0.0)
    kt = tl.load(k + bh * seq * D + n[None, :] * D + d[:, None], mask=n[None, :] < seq, other=0.0)
    s = tl.dot(qt, kt, tl.zeros((BM, BN), tl.float32))
    s = s.to(tl.bfloat16).to(tl.float32) * 0.125
    tl.store(out + bh * seq * seq + m[:, None] * seq + n[None, :], s.to(tl.bfloat16), mask=(m[:, None] < seq) & (n[None, :] < seq))


@triton.jit
def softmax_kernel(s, out, seq, IT: tl.constexpr, EXACT: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    it = tl.arange(0, IT)[:, None]; lane = tl.arange(0, 32)[None, :]
    col = it * 32 + lane
    x = tl.load(s + row * seq + col, mask=col < seq, other=-float("inf")).to(tl.float32)
    mx = tl.max(tl.max(x, 1), 0)
    if EXACT:
        e = libdevice.exp(x - mx)
        acc = tl.zeros([32], tl.float32)
        for i in tl.static_range(IT):
            acc += tl.sum(tl.where(it == i, e, 0.0), 0)
        acc = tl.sum(tl.reshape(acc, (2, 16)), 0)
        acc = tl.sum(tl.reshape(acc, (2, 8)), 0)
        acc = tl.sum(tl.reshape(acc, (2, 4)), 0)
        acc = tl.sum(tl.reshape(acc, (2, 2)), 0)
        total = tl.sum(tl.reshape(acc, (2, 1)), 0)
        p = tl.math.div_rn(e, tl.reshape(total, (1, 1)))
    else:
        e = tl.exp(x - mx)
        p = e / tl.sum(tl.sum(e, 1), 0)
    tl.store(out + row * seq + col, p.to(tl.bfloat16), mask=col < seq)


def main():
    torch.manual_seed(0)
    B, H, S, D = int(os.environ.get("B", 512)), 12, 197, 64
    q, k = [(torch.randn(B, H, S, D, device="cuda") * 3 + 0.5).to(torch.bfloat16) for _ in range(2)]
    ref = (q * D ** -0.5) @ k.transpose(-2, -1)
    total = ref.numel()
    print(f"scores: {total} entries", flush=True)
    for BM, BN, warps in [(64, 64, 4), (128, 64, 4), (128, 64, 8), (64, 32, 4), (128, 128, 8), (64, 128, 4), (16, 32, 1)]:
        out = torch.empty_like(ref)
        scores_kernel[(B * H, triton.cdiv(S, BM), triton.cdiv(S, BN))](q, k, out, S, D=D, BM=BM, BN=BN, num_warps=warps)
        diff = (out != ref).sum().item()
        print(f"  tl.dot BM={BM} BN={BN} warps={warps}: {diff} of {total} scores differ ({diff/total:.2e})", flush=True)
    pref = ref.softmax(-1)
    for exact in (0, 1):
        out = torch.empty_like(ref)
        softmax_kernel[(B * H * S,)](ref, out, S, IT=8, EXACT=exact, num_warps=1)
        diff = (out != pref).sum().item()
        print(f"  softmax exact={exact}: {diff} of {total} probabilities differ", flush=True)
    v = (torch.randn(B, H, S, D, device="cuda") * 3 + 0.5).to(torch.bfloat16)
    o_ref = pref @ v
    o_f32 = pref.float() @ v.float()
    print(f"  p@v bf16 vs fp32-then-round: {(o_f32.to(torch.bfloat16) != o_ref).sum().item()} of {o_ref.numel()} differ", flush=True)


if __name__ == "__main__":
    main()
