"""Where the cooperative candidate's forward spends 1.2 ms of host time per call."""
import sys, os, tempfile, importlib.util, time, cProfile, pstats
sys.path.insert(0, "src")
import torch, triton
from kernelwright.task import load_task
from kernelwright.generate.expert.analysis import analyze
from kernelwright.generate.expert.templates import all_templates

def module(path, name):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m); return m

def timed(label, fn, n=30):
    fn(); torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n): fn()
    t1 = time.perf_counter(); torch.cuda.synchronize()
    print(f"{label}: host {1e3*(t1-t0)/n:.3f} ms/call", flush=True)

def main():
    path = "src/kernelwright/suites/builtin/norm_instancenorm.py"
    a = analyze(load_task(path))
    t = next(t for t in all_templates() if t.name == "triton.norm_cooperative")
    d = tempfile.mkdtemp(); p = os.path.join(d, "cand.py"); open(p, "w").write(t.render(a, {"CHUNK": 4096, "num_warps": 4}))
    cand = module(p, "cand")
    x = torch.randn(48, 64, 256, 256, device="cuda")
    n = cand.ModelNew(64).cuda()
    timed("forward", lambda: n(x))
    rows, cols = 48 * 64, 256 * 256
    K = triton.cdiv(cols, 4096); chunk = triton.cdiv(cols, K)
    out = torch.empty_like(x); stats = torch.empty(rows * K * 2, device="cuda"); counter = torch.zeros(rows, dtype=torch.int32, device="cuda")
    probe = lambda: cand.kw_coop[(1,)](x, out, stats, counter, 0, cols, chunk, 1, K, KP=16, CHUNK=4096, RMS=False, num_warps=4)
    timed("probe launch", probe)
    ck = probe()
    timed("kw_resident", lambda: cand.kw_resident(ck, 4))
    timed("torch props", lambda: torch.cuda.get_device_properties(0))
    timed("triton props", lambda: triton.runtime.driver.active.utils.get_device_properties(0))
    timed("zeros", lambda: torch.zeros(rows, dtype=torch.int32, device="cuda"))
    for coop in (False, True):
        timed(f"main launch coop={coop}", lambda: cand.kw_coop[(24 * K,)](x, out, stats, counter, 0, cols, chunk, 24, K, KP=16, CHUNK=4096, RMS=False, num_warps=4, launch_cooperative_grid=coop))
    pr = cProfile.Profile(); pr.enable()
    for _ in range(20): n(x)
    pr.disable(); torch.cuda.synchronize()
    pstats.Stats(pr).sort_stats("cumulative").print_stats(25)

if __name__ == "__main__":
    main()
