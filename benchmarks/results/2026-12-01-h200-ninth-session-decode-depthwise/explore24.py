"""Ninth session: the bench timed the depthwise template's 4 x 64 tile on 1 warp at 0.635 ms, explore23 its
hand-written twin (dw_tile) at 0.501. Both here, by do_bench (one input, L2 flushed) and by the evaluator's
time_calls (rotating input sets, L2 flushed, median)."""
import sys
sys.path.insert(0, ".bench-state")
import os, tempfile
import torch
import triton
from triton.testing import do_bench
from explore import Case, load_module
from explore22 import dw_tile
from kernelwright.evaluate.timing import time_calls


def main():
    c = Case("conv_depthwise_mobilenetv2")
    x = c.inputs[0]
    w = c.ref.conv.weight.detach().contiguous()
    n, ch, h, wd = x.shape
    out = torch.empty_like(x)
    sets = [[x]] + [[torch.randn_like(x)] for _ in range(2)]
    d = tempfile.mkdtemp(); path = os.path.join(d, "cand.py")
    for point in (dict(), dict(num_warps=2, BLOCK_P=8)):
        open(path, "w").write(c.source("triton.depthwise", **point))
        mod = load_module(path, "cand_dw" + str(len(point)))
        model = mod.ModelNew(*c.mod.get_init_inputs()).cuda().eval()
        model.load_state_dict(c.ref.state_dict())
        with torch.no_grad():
            ms = do_bench(lambda: model(x), rep=200)
            tc = time_calls(model, sets, "cuda", budget_s=3.0)
        print(f"  template {point}: do_bench {ms:.4f} ms ({100*c.sol_ms/ms:.1f}%), time_calls {tc.median_ms:.4f} ms", flush=True)
    for bh, warps in ((4, 1), (8, 2)):
        grid = (n * ch * triton.cdiv(h, bh),)
        fn = lambda x: dw_tile[grid](x, w, out, ch, h, wd, R=3, S=3, PH=1, PW=1, BLOCK_H=bh, BLOCK_W=64,
                                     num_warps=warps) and out
        ms = do_bench(lambda: fn(x), rep=200)
        tc = time_calls(fn, sets, "cuda", budget_s=3.0)
        print(f"  dw_tile {bh}x64 w{warps}: do_bench {ms:.4f} ms ({100*c.sol_ms/ms:.1f}%), time_calls {tc.median_ms:.4f} ms", flush=True)


if __name__ == "__main__":
    main()
