"""Seventh session: triton.cross_entropy's row kernel tiling each row's 16-aligned interior (new) against tiles
from each row's start (old), on GPT-2's vocabulary (50257: rows start anywhere) and the suite's Llama-2
vocabulary (32000: every row aligned). Candidates rendered on the development machine, loaded here."""
import importlib.util, sys
import torch, torch.nn.functional as F
from triton.testing import do_bench


def bandwidth():
    x = torch.empty(2**28, device="cuda"); y = torch.empty_like(x)
    return 2 * x.numel() * 4 / (do_bench(lambda: y.copy_(x), rep=300, return_mode="min") * 1e-3)


def load(name):
    spec = importlib.util.spec_from_file_location(name, f".bench-state/{name}.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m.ModelNew().cuda()


def main():
    bw = bandwidth()
    print(f"copy bandwidth {bw / 1e12:.3f} TB/s", flush=True)
    for vocab, names in ((50257, ("ce_old_tile", "ce_new_tile", "ce_old_lane", "ce_new_lane")),
                         (32000, ("ce32k_old_tile", "ce32k_new_tile"))):
        torch.manual_seed(0)
        logits = torch.randn(8192, vocab, device="cuda") * 4.0
        targets = torch.randint(0, vocab, (8192,), device="cuda")
        want = F.cross_entropy(logits, targets, ignore_index=-100)
        sol = (logits.numel() * 4 + targets.numel() * 8) / bw * 1e3
        eager = do_bench(lambda: F.cross_entropy(logits, targets, ignore_index=-100), rep=200)
        print(f"== vocab {vocab}: SOL {sol:.4f} ms, eager {eager:.4f} ms", flush=True)
        for name in names:
            model = load(name)
            got = model(logits, targets)
            err = abs(float(got) - float(want))
            ms = do_bench(lambda: model(logits, targets), rep=200)
            print(f"  {name:16s} {ms:.4f} ms  {100 * sol / ms:5.1f}% SOL  err {err:.2e} {'ok' if err < 1e-4 * abs(float(want)) else 'WRONG'}", flush=True)


if __name__ == "__main__":
    main()
