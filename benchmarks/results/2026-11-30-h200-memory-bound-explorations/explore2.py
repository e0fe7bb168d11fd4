"""Second exploration: read ceilings, num_stages on looped kernels, KL and group norm points."""
import sys
sys.path.insert(0, ".bench-state")
import torch, triton
from triton.testing import do_bench
import explore as E


def stages(src, n):
    import re
    out, k = re.subn(r"num_warps=(\d+)\)", rf"num_warps=\1, num_stages={n})", src)
    assert k, "no launch found"
    return out


def read_ceilings():
    n = 1 << 28  # 1 GiB of fp32
    x = torch.randn(n, device="cuda")
    A = x.view(32768, 8192)
    v = torch.randn(8192, device="cuda")
    for label, fn in (("sum", lambda: x.sum()), ("amax", lambda: x.amax()), ("mv", lambda: torch.mv(A, v)),
                      ("norm", lambda: torch.linalg.vector_norm(x))):
        for _ in range(3):
            fn()
        best = []
        for _ in range(20):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record(); fn(); e.record(); e.synchronize(); best.append(s.elapsed_time(e))
        print(f"read ceiling {label}: {4 * n / (min(best) * 1e-3) / 1e12:.3f} TB/s", flush=True)
    y = torch.empty_like(x)
    best = min(do_bench(lambda: y.copy_(x), rep=200, return_mode="all"))
    print(f"copy: {8 * n / (best * 1e-3) / 1e12:.3f} TB/s", flush=True)


def main():
    read_ceilings()
    c = E.Case("reduce_reverse_cumsum")
    for params in ({"reverse_by": "subtract", "BLOCK": 1024, "num_warps": 4}, {"reverse_by": "subtract", "BLOCK": 2048, "num_warps": 4},
                   {"reverse_by": "subtract", "BLOCK": 1024, "num_warps": 8}):
        src = c.source("triton.scan", **params)
        for n in (None, 1, 2):
            c.time_source(f"scan {params} stages={n}", src if n is None else stages(src, n))
    c = E.Case("reduce_cumsum_topp")
    for params in ({"BLOCK": 4096, "num_warps": 8}, {"BLOCK": 8192, "num_warps": 16}):
        src = c.source("triton.scan", **params)
        for n in (None, 1):
            c.time_source(f"scan {params} stages={n}", src if n is None else stages(src, n))
    for task, template, points in (
            ("softmax_vocab", "triton.row_reduce", [{"strategy": "looped", "BLOCK": 8192, "num_warps": 16}, {"strategy": "looped", "BLOCK": 4096, "num_warps": 8}]),
            ("softmax_log_softmax", "triton.row_reduce", [{"strategy": "looped", "BLOCK": 8192, "num_warps": 16}, {"strategy": "looped", "BLOCK": 4096, "num_warps": 8}]),
            ("norm_instancenorm", "triton.norm", [{"strategy": "looped", "BLOCK": 8192, "num_warps": 16}, {"strategy": "looped", "BLOCK": 4096, "num_warps": 8}]),
            ("reduce_logsumexp", "triton.row_reduce", [{"strategy": "looped", "BLOCK": 1024, "num_warps": 8}])):
        c = E.Case(task)
        for params in points:
            src = c.source(template, **params)
            for n in (None, 1, 2):
                c.time_source(f"{params} stages={n}", src if n is None else stages(src, n))
    c = E.Case("loss_kl_distill")
    for strategy, block, warps in (("tile", 1024, 4), ("tile", 512, 4), ("tile", 1024, 2), ("tile", 512, 2), ("tile", 2048, 4), ("lane", 1024, 4), ("lane", 512, 2)):
        src = c.source("triton.kl_div", strategy=strategy, BLOCK=block, num_warps=warps)
        for n in (None, 1):
            c.time_source(f"{strategy} {block}/{warps} stages={n}", src if n is None else stages(src, n))
    c = E.Case("norm_groupnorm")
    for split, block, warps in ((16, 1024, 8), (32, 2048, 8), (64, 4096, 8), (32, 4096, 16), (8, 2048, 8)):
        try:
            src = c.source("triton.group_norm", SPLIT=split, BLOCK=block, num_warps=warps)
        except Exception as e:
            print("group norm point", split, block, warps, e)
            continue
        c.time_source(f"gn SPLIT={split} {block}/{warps}", src)
        c.time_source(f"gn SPLIT={split} {block}/{warps} stages=1", stages(src, 1))


if __name__ == "__main__":
    main()
