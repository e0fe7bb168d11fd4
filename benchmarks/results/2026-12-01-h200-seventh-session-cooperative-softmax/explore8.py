"""Seventh session: the softmax_cooperative candidate's forward measured 47 % of the speed of light where the same
kernel launched by hand (explore7) measured 75 %. Where does the time go: the forward's host work, or the kernel?
(a) the forward under do_bench; (b) the forward's wall time a call, back to back; (c) its host time alone;
(d) the candidate's own kernel launched by hand with buffers made once; (e) the forward with its buffers made once."""
import sys, os, time, tempfile, importlib.util
sys.path.insert(0, ".bench-state")
import torch, triton
from triton.testing import do_bench
import explore as E
from explore import Case


def main():
    for task in ("softmax_vocab", "softmax_log_softmax"):
        c = Case(task)
        x = c.inputs[0]
        for params in ({}, {"CHUNK": 2048, "maxnreg": 0}, {"num_warps": 8, "maxnreg": 0}):
            src = c.source("triton.softmax_cooperative", **params)
            d = tempfile.mkdtemp(); path = os.path.join(d, "cand.py"); open(path, "w").write(src)
            cand = E.load_module(path, f"cand8_{task}_{len(params)}_{params.get('CHUNK', 0)}")
            model = cand.ModelNew().cuda()
            with torch.no_grad():
                c.time_fn(f"(a) forward {params}", lambda: model(x))
                for _ in range(5):
                    model(x)
                torch.cuda.synchronize(); t = time.perf_counter()
                for _ in range(50):
                    model(x)
                torch.cuda.synchronize(); wall = (time.perf_counter() - t) / 50
                # host alone: the GPU busy with a long sleep first, so that every launch only queues
                torch.cuda._sleep(200_000_000)
                t = time.perf_counter()
                for _ in range(20):
                    model(x)
                host = (time.perf_counter() - t) / 20
                torch.cuda.synchronize()
                print(f"  (b) wall {wall * 1e3:.4f} ms a call   (c) host {host * 1e3:.4f} ms a call", flush=True)
            # (d): the forward's lines, by hand, with the buffers made once.
            rows, cols = x.numel() // x.shape[-1], x.shape[-1]
            block = params.get("CHUNK", 4096); warps = params.get("num_warps", 4); maxnreg = params.get("maxnreg", 128)
            chunk = triton.cdiv(triton.cdiv(cols, triton.cdiv(cols, block)), 16) * 16
            K = triton.cdiv(cols, chunk)
            out = torch.empty_like(x); stats = torch.empty(rows * K * 2, device="cuda")
            counter = torch.zeros(rows, dtype=torch.int32, device="cuda")
            opts = dict(KP=triton.next_power_of_2(K), CHUNK=block, LOG=task != "softmax_vocab", EDGES=cols % 16 != 0,
                        num_warps=warps)
            if maxnreg:
                opts["maxnreg"] = maxnreg
            compiled = cand.kw_coop[(1,)](x, out, stats, counter, 0, cols, chunk, 1, K, **opts)
            groups = min(cand.kw_resident(compiled, warps) // K, rows)

            def by_hand():
                counter.zero_()
                cand.kw_coop[(groups * K,)](x, out, stats, counter, rows, cols, chunk, groups, K, **opts,
                                            launch_cooperative_grid=True)
                return out
            c.time_fn(f"(d) kernel by hand regs={compiled.n_regs} groups={groups}", by_hand)


if __name__ == "__main__":
    main()
