"""Ninth session, second design (kw_decode_values split over the head dim, no kw_combine): where the decode split path's time goes. For each point: do_bench of the forward as the
bench launches it (Python launches each call), do_bench of a CUDA graph of it (no launch overhead), and each
kernel's own GPU time from torch.profiler (mean of 20 calls)."""
import sys
sys.path.insert(0, ".bench-state")
import torch
from triton.testing import do_bench
from explore19 import BF16Case
from explore import load_module
import os, tempfile


def kernel_times(fn, calls=20):
    from torch.profiler import profile, ProfilerActivity
    fn(); torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    out = {}
    for e in prof.key_averages():
        if e.device_type.name == "CUDA" and e.count:
            out[e.key[:40]] = (e.device_time_total / calls / 1e3, e.count // calls)
    return out


def main():
    c = BF16Case("attention_llama3_decode")
    points = [dict(SPLIT=1), dict(SPLIT=2), dict(SPLIT=4), dict(SPLIT=8), dict(SPLIT=16), dict(SPLIT=4, BLOCK_N=128),
              dict(SPLIT=8, BLOCK_N=128), dict(SPLIT=16, BLOCK_N=128), dict(SPLIT=4, num_stages=2),
              dict(SPLIT=4, BLOCK_N=128, num_stages=2), dict(SPLIT=4, num_warps=2)]
    for point in points:
        source = c.source("triton.attention_decode", **point)
        d = tempfile.mkdtemp(); path = os.path.join(d, "cand.py"); open(path, "w").write(source)
        mod = load_module(path, "cand_" + str(abs(hash(str(point)))))
        model = mod.ModelNew().cuda()
        fn = lambda: model(*c.inputs)
        with torch.no_grad():
            out = fn()
            err = (out.float() - c.expected.float()).abs().max().item()
            plain = do_bench(fn, rep=200)
            s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                fn(); fn()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            graphed = do_bench(g.replay, rep=200)
            kt = kernel_times(fn)
        ks = ", ".join(f"{k} {v[0]:.4f}" for k, v in kt.items())
        print(f"  {str(point):45s} plain {plain:.4f} ms ({100*c.sol_ms/plain:5.1f}%)  graph {graphed:.4f} ms "
              f"({100*c.sol_ms/graphed:5.1f}%)  err {err:.1e} | {ks}", flush=True)


if __name__ == "__main__":
    main()
