"""Probe 2 (fifth session): where do tl.dot's bf16 scores differ from torch's (cuBLAS's)?

Keeps tl.dot's fp32 scores and rounds them three ways (to nearest even, ties away from zero, toward
zero); also sums K in other orders (two halves, four k16 chunks added in fp32, sequential fma)."""
import os, torch, triton, triton.language as tl


@triton.jit
def scores_f32(q, k, out, seq, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, ORDER: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64); m = tl.program_id(1) * BM + tl.arange(0, BM); n = tl.program_id(2) * BN + tl.arange(0, BN)
    qb = q + bh * seq * D + m[:, None] * D
    kb = k + bh * seq * D + n[None, :] * D
    mm = m[:, None] < seq
    nm = n[None, :] < seq
    if ORDER == 0:  # one dot over K
        d = tl.arange(0, D)
        s = tl.dot(tl.load(qb + d[None, :], mask=mm, other=0.0), tl.load(kb + d[:, None], mask=nm, other=0.0),
                   tl.zeros((BM, BN), tl.float32))
    elif ORDER == 1:  # two halves from zero, added
        d = tl.arange(0, D // 2)
        a = tl.dot(tl.load(qb + d[None, :], mask=mm, other=0.0), tl.load(kb + d[:, None], mask=nm, other=0.0), tl.zeros((BM, BN), tl.float32))
        b = tl.dot(tl.load(qb + D // 2 + d[None, :], mask=mm, other=0.0), tl.load(kb + D // 2 + d[:, None], mask=nm, other=0.0), tl.zeros((BM, BN), tl.float32))
        s = a + b
    elif ORDER == 2:  # k16 chunks from zero, added in order
        d = tl.arange(0, 16)
        s = tl.zeros((BM, BN), tl.float32)
        for c in tl.static_range(D // 16):
            s += tl.dot(tl.load(qb + c * 16 + d[None, :], mask=mm, other=0.0), tl.load(kb + c * 16 + d[:, None], mask=nm, other=0.0), tl.zeros((BM, BN), tl.float32))
    else:  # sequential fma over K
        s = tl.zeros((BM, BN), tl.float32)
        for c in range(D):
            s += tl.load(qb + c, mask=mm, other=0.0).to(tl.float32) * tl.load(kb + c, mask=nm, other=0.0).to(tl.float32)
    tl.store(out + bh * seq * seq + m[:, None] * seq + n[None, :], s, mask=mm & nm)


def to_bf16(x, mode):
    b = x.view(torch.int32)
    if mode == "nearest-even":
        return x.to(torch.bfloat16)
    if mode == "ties-away":
        # sign-magnitude: add half an ulp to the magnitude, in the float's own bits
        mag = (b & 0x7FFFFFFF) + 0x8000
        r = (mag & 0x7FFF0000) | (b & -0x80000000)
        return r.view(torch.float32).to(torch.bfloat16)
    if mode == "toward-zero":
        return (b & -0x10000).view(torch.float32).to(torch.bfloat16)


def main():
    torch.manual_seed(0)
    B, H, S, D = int(os.environ.get("B", 512)), 12, 197, 64
    q, k = [(torch.randn(B, H, S, D, device="cuda") * 3 + 0.5).to(torch.bfloat16) for _ in range(2)]
    ref = (q * D ** -0.5) @ k.transpose(-2, -1)
    total = ref.numel()
    for order in (0, 1, 2, 3):
        s = torch.empty(B, H, S, S, device="cuda")
        scores_f32[(B * H, triton.cdiv(S, 64), triton.cdiv(S, 64))](q, k, s, S, D=D, BM=64, BN=64, ORDER=order, num_warps=4)
        s = s * 0.125
        ties = ((s.view(torch.int32) & 0xFFFF) == 0x8000)
        for mode in ("nearest-even", "ties-away", "toward-zero"):
            diff = to_bf16(s, mode) != ref
            print(f"  order {order} {mode:13s}: {diff.sum().item():8d} of {total} differ; ties among them {(diff & ties).sum().item()}, ties overall {ties.sum().item()}", flush=True)
        if order == 0:
            d = to_bf16(s, "nearest-even") != ref
            idx = d.nonzero()[:5]
            for i in idx.tolist():
                v = s[tuple(i)].item(); print(f"    e.g. fp32 {v!r} bits {s[tuple(i)].view(torch.int32).item() & 0xFFFFFFFF:08x} ours {to_bf16(s, 'nearest-even')[tuple(i)].item()} torch {ref[tuple(i)].item()}")
        del s


if __name__ == "__main__":
    main()
