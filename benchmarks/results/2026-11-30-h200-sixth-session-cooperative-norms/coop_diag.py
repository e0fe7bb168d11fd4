"""Why is the rendered cooperative instance norm 1.2 ms when the probe kernel was 0.44 ms? Time its parts."""
import sys, os, tempfile, importlib.util, time
sys.path.insert(0, "src")
import torch, triton
from triton.testing import do_bench
from kernelwright.task import load_task
from kernelwright.generate.expert.analysis import analyze
from kernelwright.generate.expert.templates import all_templates

def module(path, name):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m); return m

def main():
    path = "src/kernelwright/suites/builtin/norm_instancenorm.py"
    a = analyze(load_task(path))
    t = next(t for t in all_templates() if t.name == "triton.norm_cooperative")
    d = tempfile.mkdtemp(); p = os.path.join(d, "cand.py"); open(p, "w").write(t.render(a, {"CHUNK": 4096, "num_warps": 4}))
    cand = module(p, "cand")
    x = torch.randn(48, 64, 256, 256, device="cuda")
    n = cand.ModelNew(64).cuda()
    n(x); torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(50): n(x)
    t1 = time.perf_counter(); torch.cuda.synchronize(); t2 = time.perf_counter()
    print(f"forward host {1e3*(t1-t0)/50:.3f} ms/call, with sync {1e3*(t2-t0)/50:.3f}", flush=True)
    rows, cols = 48 * 64, 256 * 256
    K = triton.cdiv(cols, 4096); chunk = triton.cdiv(cols, K)
    out = torch.empty_like(x); stats = torch.empty(rows * K * 2, device="cuda"); counter = torch.zeros(rows, dtype=torch.int32, device="cuda")
    ck = cand.kw_coop[(1,)](x, out, stats, counter, 0, cols, chunk, 1, K, KP=triton.next_power_of_2(K), CHUNK=4096, RMS=False, num_warps=4)
    print("n_regs", ck.n_regs, "spills", ck.n_spills, "shared", ck.metadata.shared, "resident", cand.kw_resident(ck, 4), flush=True)
    fit = cand.kw_resident(ck, 4)
    for coop in (True, False):
        for groups in (fit // K, 33, 16):
            def go():
                counter.zero_()
                cand.kw_coop[(groups * K,)](x, out, stats, counter, rows, cols, chunk, groups, K, KP=triton.next_power_of_2(K), CHUNK=4096, RMS=False, num_warps=4, launch_cooperative_grid=coop)
            go(); torch.cuda.synchronize()
            print(f"coop={coop} groups={groups}: {do_bench(go, rep=200):.4f} ms", flush=True)
    print(f"whole forward do_bench {do_bench(lambda: n(x), rep=200):.4f} ms", flush=True)

if __name__ == "__main__":
    main()
