"""Probe 3 (fifth session): which rounding source fails ViT attention's outputs at bf16's tolerance?
Outputs from (scores, softmax) = (tl.dot, torch), (torch, tl.exp softmax), (torch, exact emulation),
each then torch's p @ v, checked as the evaluator checks: |got - want| <= 2e-2 * rms(want) + 2e-2 * |want|."""
import sys, torch, triton
sys.path.insert(0, ".bench-state")
from probe_vit import scores_kernel, softmax_kernel


def fails(got, want):
    want = want.float(); got = got.float()
    rms = want.pow(2).mean().sqrt()
    return ((got - want).abs() > 2e-2 * rms + 2e-2 * want.abs()).sum().item()


def main():
    torch.manual_seed(0)
    B, H, S, D = 512, 12, 197, 64
    q, k, v = [(torch.randn(B, H, S, D, device="cuda") * 3 + 0.5).to(torch.bfloat16) for _ in range(3)]
    s_ref = (q * D ** -0.5) @ k.transpose(-2, -1)
    want = s_ref.softmax(-1) @ v
    s_tl = torch.empty_like(s_ref)
    scores_kernel[(B * H, triton.cdiv(S, 64), triton.cdiv(S, 64))](q, k, s_tl, S, D=D, BM=64, BN=64, num_warps=4)
    def soft(s, exact):
        out = torch.empty_like(s)
        softmax_kernel[(B * H * S,)](s, out, S, IT=8, EXACT=exact, num_warps=1)
        return out
    print("outputs", want.numel(), flush=True)
    print("tl.dot scores, torch softmax:      ", fails(s_tl.softmax(-1) @ v, want), flush=True)
    print("torch scores, tl.exp softmax:      ", fails(soft(s_ref, 0) @ v, want), flush=True)
    print("torch scores, exact softmax:       ", fails(soft(s_ref, 1) @ v, want), flush=True)
    print("tl.dot scores, exact softmax:      ", fails(soft(s_tl, 1) @ v, want), flush=True)
    print("tl.dot scores, tl.exp softmax:     ", fails(soft(s_tl, 0) @ v, want), flush=True)
    p = soft(s_tl, 1)
    print("tl.dot, exact, fp32 p@v rounded:   ", fails((p.float() @ v.float()).to(torch.bfloat16), want), flush=True)


if __name__ == "__main__":
    main()
