"""Seventh session: the triton.softmax_cooperative candidates (and norm_cooperative after the refactor) at the
suite's shapes on a GPU: correct at the main shape and the variants (fp32, bf16), and how fast per point."""
import sys, os, tempfile, importlib.util, itertools
sys.path.insert(0, "src")
import torch, triton
from triton.testing import do_bench
from kernelwright.task import load_task
from kernelwright.generate.expert.analysis import analyze
from kernelwright.generate.expert.templates import all_templates
from kernelwright.evaluate.inputs import variant_globals

SUITE = "src/kernelwright/suites/builtin"


def bandwidth():
    x = torch.empty(2**28, device="cuda"); y = torch.empty_like(x)
    return 2 * x.numel() * 4 / (do_bench(lambda: y.copy_(x), rep=300, return_mode="min") * 1e-3)


def module(path, name):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m); return m


def main():
    bw = bandwidth()
    print(f"copy bandwidth {bw/1e12:.3f} TB/s", flush=True)
    template_name, tasks, pairs = sys.argv[1], sys.argv[2].split(","), eval(sys.argv[3])
    for name in tasks:
        path = f"{SUITE}/{name}.py"
        task = load_task(path)
        a = analyze(task)
        ref = module(path, "ref_" + name)
        t = next(t for t in all_templates() if t.name == template_name)
        space = t.space(a)
        points = [dict(zip(space, combo)) for combo in itertools.product(*space.values()) if combo[:2] in pairs]
        for i, params in enumerate(points):
            d = tempfile.mkdtemp(); p = os.path.join(d, "cand.py"); open(p, "w").write(t.render(a, params))
            cand = module(p, f"cand_{name}_{i}")
            original = cand.kw_resident
            def resident(compiled, warps, original=original, seen=[]):
                if not seen:
                    seen.append(1)
                    print(f"  regs {compiled.n_regs} spills {compiled.n_spills} resident {original(compiled, warps)}", flush=True)
                return original(compiled, warps)
            cand.kw_resident = resident
            shapes = [{}] + (list(task.meta.shape_variants) if i == 0 else [])
            for shape in shapes:
                for dtype in ((torch.float32, torch.bfloat16) if i == 0 else (torch.float32,)):
                    with variant_globals(ref, shape):
                        torch.manual_seed(0)
                        m = ref.Model(*ref.get_init_inputs()).cuda().to(dtype).eval()
                        n = cand.ModelNew(*ref.get_init_inputs()).cuda().to(dtype).eval()
                        n.load_state_dict(m.state_dict())
                        xs = [x.cuda().to(dtype) for x in ref.get_inputs()]
                    with torch.no_grad():
                        want, got = m(*xs), n(*xs)
                        again = n(*xs)
                    err = (want.float() - got.float()).abs().max().item()
                    same = torch.equal(got, again)
                    tol = 1e-4 if dtype == torch.float32 else 3e-2
                    line = (f"{name} {params} {shape or 'main'} {str(dtype)[6:]} err {err:.2e} "
                            f"{'ok' if err < tol * 10 and same else 'WRONG'}{'' if same else ' (runs differ)'}")
                    if not shape and dtype == torch.float32:
                        nbytes = 2 * xs[0].numel() * 4
                        with torch.no_grad():
                            ms = do_bench(lambda: n(*xs), rep=200)
                            eager = do_bench(lambda: m(*xs), rep=100)
                        line += f"  {ms:.4f} ms  {100 * nbytes / bw / ms * 1e3:.1f}% SOL  eager {eager:.4f} ms"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
