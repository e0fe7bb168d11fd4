"""Registers Triton 3.6 gives the softmax lag kernel and variants (compiled on the GPU machine, not run)."""
import sys, importlib.util, torch, triton
sys.path.insert(0, ".bench-state/regs")
x = torch.randn(64, 8192, device="cuda"); out = torch.empty_like(x)
stats = torch.empty(64 * 16 * 2, device="cuda"); counter = torch.zeros(64, dtype=torch.int32, device="cuda")
for f in ("kern", "kern_a", "kern_b", "kern_c"):
    spec = importlib.util.spec_from_file_location(f, f".bench-state/regs/{f}.py"); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    for name in [n for n in dir(m) if n.startswith("soft_") or n == "norm_lagreg"]:
        k = getattr(m, name)
        for CH, w in ((4096, 4), (8192, 8)):
            try:
                if name == "norm_lagreg":
                    ck = k[(1,)](x, out, x, x, stats, counter, 0, 8192, CH, 1, 2, 1e-5, 1, 1, 1, KP=2, CHUNK=CH, AFFINE=False, num_warps=w)
                else:
                    ck = k[(1,)](x, out, stats, counter, 0, 8192, CH, 1, 2, KP=2, CHUNK=CH, LOG=False, num_warps=w)
                print(f, name, CH, w, "regs", ck.n_regs, "spills", ck.n_spills, flush=True)
            except Exception as e:
                print(f, name, CH, w, "ERROR", str(e)[:200], flush=True)
