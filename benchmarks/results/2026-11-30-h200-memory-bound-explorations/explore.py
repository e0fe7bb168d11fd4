"""Exploration (not committed): time template points and hand-written variants on the suite's memory-bound tasks."""
import importlib.util, sys, math, os, json, tempfile, traceback, time
sys.path.insert(0, "src")
import torch, triton, triton.language as tl
from triton.testing import do_bench
from kernelwright.task import load_task
from kernelwright.generate.expert.analysis import analyze
from kernelwright.generate.expert.templates import all_templates

SUITE = "src/kernelwright/suites/builtin"
torch.backends.cuda.matmul.allow_tf32 = False
RESULTS = []
ONLY = sys.argv[1].split(",") if len(sys.argv) > 1 else None


def bandwidth():
    x = torch.empty(2**28, device="cuda"); y = torch.empty_like(x)
    t = do_bench(lambda: y.copy_(x), rep=300, return_mode="min")
    return 2 * x.numel() * 4 / (t * 1e-3)


BW = bandwidth()
print(f"copy bandwidth {BW/1e12:.3f} TB/s", flush=True)


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod


class Case:
    def __init__(self, task):
        self.name = task
        self.mod = load_module(f"{SUITE}/{task}.py", "ref_" + task)
        torch.manual_seed(0)
        self.ref = self.mod.Model(*self.mod.get_init_inputs()).cuda().eval()
        self.inputs = [t.cuda() if isinstance(t, torch.Tensor) else t for t in self.mod.get_inputs()]
        with torch.no_grad():
            self.expected = self.ref(*self.inputs)
        nbytes = sum(t.numel() * t.element_size() for t in self.inputs if isinstance(t, torch.Tensor))
        nbytes += sum(p.numel() * p.element_size() for p in list(self.ref.parameters()) + list(self.ref.buffers()))
        nbytes += self.expected.numel() * self.expected.element_size()
        self.sol_ms = nbytes / BW * 1e3
        self.analysis = analyze(load_task(f"{SUITE}/{task}.py"))
        self.eager = do_bench(lambda: self.ref(*self.inputs), rep=200)
        print(f"== {task}: SOL {self.sol_ms:.4f} ms, eager {self.eager:.4f} ms", flush=True)

    def source(self, template, **params):
        t = next(t for t in all_templates() if t.name == template)
        space = t.space(self.analysis)
        full = {k: v[0] for k, v in space.items()}; full.update(params)
        return t.render(self.analysis, full)

    def time_source(self, label, source):
        d = tempfile.mkdtemp(); path = os.path.join(d, "cand.py"); open(path, "w").write(source)
        try:
            mod = load_module(path, "cand_" + str(abs(hash(label))))
            torch.manual_seed(0)
            model = mod.ModelNew(*self.mod.get_init_inputs()).cuda().eval()
            model.load_state_dict(self.ref.state_dict())
            self.time_fn(label, lambda: model(*self.inputs))
        except Exception as e:
            print(f"  {label}: ERROR {type(e).__name__}: {str(e)[:300]}", flush=True)

    def time_fn(self, label, fn):
        try:
            with torch.no_grad():
                out = fn()
            torch.cuda.synchronize()
            err = (out.float() - self.expected.float()).abs().max().item()
            ok = torch.allclose(out.float(), self.expected.float(), atol=1e-4, rtol=1e-4)
            ms = do_bench(fn, rep=200)
            pct = 100 * self.sol_ms / ms
            print(f"  {label:60s} {ms:.4f} ms  {pct:5.1f}% SOL  eager/x {self.eager/ms:.2f}  {'ok' if ok else 'WRONG'} err {err:.2e}", flush=True)
            RESULTS.append(dict(task=self.name, label=label, ms=ms, sol_pct=pct, ok=ok, err=err))
        except Exception as e:
            print(f"  {label}: ERROR {type(e).__name__}: {str(e)[:300]}", flush=True)
            traceback.print_exc()


NUM_SMS = torch.cuda.get_device_properties(0).multi_processor_count

# ---------------------------------------------------------------- hand-written kernels

@triton.jit
def soft2(x, out, cols, BLOCK: tl.constexpr, LOG: tl.constexpr, ONE_EXP: tl.constexpr, EVICT: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
    m_l = tl.full([BLOCK], -float("inf"), tl.float32)
    s_l = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, cols, BLOCK):
        c = start + tl.arange(0, BLOCK)
        mask = c < cols
        if EVICT:
            v = tl.load(x + base + c, mask=mask, other=-float("inf"), eviction_policy="evict_last")
        else:
            v = tl.load(x + base + c, mask=mask, other=-float("inf"))
        if ONE_EXP:
            d = tl.where(v == m_l, 0.0, v - m_l)
            e = tl.exp(-tl.abs(d))
            s_l = tl.where(d > 0.0, s_l * e + 1.0, s_l + e)
            m_l = tl.maximum(m_l, v)
        else:
            m_n = tl.maximum(m_l, v)
            safe = tl.where(m_n == -float("inf"), 0.0, m_n)
            s_l = s_l * tl.exp(m_l - safe) + tl.exp(v - safe)
            m_l = m_n
    m = tl.max(m_l, 0)
    s = tl.sum(s_l * tl.exp(m_l - m), 0)
    last = (cols - 1) // BLOCK * BLOCK
    for back in range(0, cols, BLOCK):
        c = last - back + tl.arange(0, BLOCK)
        mask = c < cols
        if EVICT:
            v = tl.load(x + base + c, mask=mask, other=0.0, eviction_policy="evict_first")
        else:
            v = tl.load(x + base + c, mask=mask, other=0.0)
        if LOG:
            y = v - m - tl.log(s)
        else:
            y = tl.exp(v - m) * (1.0 / s)
        if EVICT:
            tl.store(out + base + c, y, mask=mask, eviction_policy="evict_first")
        else:
            tl.store(out + base + c, y, mask=mask)


@triton.jit
def soft_coop(x, out, stats, counter, rows, cols, groups, K: tl.constexpr, KP: tl.constexpr, CHUNK: tl.constexpr, LOG: tl.constexpr):
    pid = tl.program_id(0)
    g = pid // K
    k = pid % K
    c = k * CHUNK + tl.arange(0, CHUNK)
    mask = c < cols
    ks = tl.arange(0, KP)
    km = ks < K
    for row in range(g, rows, groups):
        base = row * cols
        v = tl.load(x + base + c, mask=mask, other=-float("inf"))
        m = tl.max(v, 0)
        s = tl.sum(tl.exp(v - m), 0)
        tl.store(stats + (row * K + k) * 2, m)
        tl.store(stats + (row * K + k) * 2 + 1, s)
        tl.debug_barrier()
        tl.atomic_add(counter + row, 1, sem="release")
        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
        ms = tl.load(stats + (row * K + ks) * 2, mask=km, other=-float("inf"), cache_modifier=".cg")
        ss = tl.load(stats + (row * K + ks) * 2 + 1, mask=km, other=0.0, cache_modifier=".cg")
        M = tl.max(ms, 0)
        S = tl.sum(ss * tl.exp(ms - M), 0)
        if LOG:
            y = v - M - tl.log(S)
        else:
            y = tl.exp(v - M) * (1.0 / S)
        tl.store(out + base + c, y, mask=mask)


def coop_softmax(x, log, chunk, warps, per_sm):
    rows, cols = x.numel() // x.shape[-1], x.shape[-1]
    K = triton.cdiv(cols, chunk)
    out = torch.empty_like(x)
    stats = torch.empty(rows * K * 2, device=x.device, dtype=torch.float32)
    counter = torch.zeros(rows, device=x.device, dtype=torch.int32)
    programs = max(NUM_SMS * per_sm // K, 1) * K
    soft_coop[(programs,)](x, out, stats, counter, rows, cols, programs // K, K=K, KP=triton.next_power_of_2(K), CHUNK=chunk, LOG=log, num_warps=warps)
    return out
# Note: K must be a power of two for tl.arange(0, K): callers pick chunk so it is.


@triton.jit
def norm_coop(x, out, stats, counter, rows, cols, groups, eps, K: tl.constexpr, KP: tl.constexpr, CHUNK: tl.constexpr):
    pid = tl.program_id(0)
    g = pid // K
    k = pid % K
    c = k * CHUNK + tl.arange(0, CHUNK)
    mask = c < cols
    ks = tl.arange(0, KP)
    km = ks < K
    for row in range(g, rows, groups):
        base = row * cols
        v = tl.load(x + base + c, mask=mask, other=0.0)
        n = tl.minimum(cols - k * CHUNK, CHUNK).to(tl.float32)
        mean = tl.sum(v, 0) / n
        d = tl.where(mask, v - mean, 0.0)
        m2 = tl.sum(d * d, 0)
        tl.store(stats + (row * K + k) * 2, mean)
        tl.store(stats + (row * K + k) * 2 + 1, m2)
        tl.debug_barrier()
        tl.atomic_add(counter + row, 1, sem="release")
        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
        means = tl.load(stats + (row * K + ks) * 2, mask=km, other=0.0, cache_modifier=".cg")
        m2s = tl.load(stats + (row * K + ks) * 2 + 1, mask=km, other=0.0, cache_modifier=".cg")
        ns = tl.where(km, tl.minimum(cols - ks * CHUNK, CHUNK), 0).to(tl.float32)
        mu = tl.sum(means * ns, 0) / cols
        var = (tl.sum(m2s, 0) + tl.sum(ns * (means - mu) * (means - mu), 0)) / cols
        y = (v - mu) / tl.sqrt_rn(var + eps)
        tl.store(out + base + c, y, mask=mask)


def coop_norm(x, eps, chunk, warps, per_sm, dims=2):
    cols = math.prod(x.shape[-dims:]); rows = x.numel() // cols
    K = triton.cdiv(cols, chunk)
    out = torch.empty_like(x)
    stats = torch.empty(rows * K * 2, device=x.device, dtype=torch.float32)
    counter = torch.zeros(rows, device=x.device, dtype=torch.int32)
    programs = max(NUM_SMS * per_sm // K, 1) * K
    norm_coop[(programs,)](x, out, stats, counter, rows, cols, programs // K, eps, K=K, KP=triton.next_power_of_2(K), CHUNK=chunk, num_warps=warps)
    return out


@triton.jit
def plane_affine_leaky(x, scale, shift, out, inner, C: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0)
    col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = col < inner
    offs = r.to(tl.int64) * inner + col
    ch = r % C
    a = tl.load(scale + ch)
    b = tl.load(shift + ch)
    v = tl.load(x + offs, mask=mask) * a + b
    v = tl.where(v > 0.0, v, v * 0.1)
    v = tl.minimum(tl.maximum(v, -0.3), 3.0)
    tl.store(out + offs, v, mask=mask)


@triton.jit
def plane_bn(x, mean, var, w, b, out, inner, C: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0)
    col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = col < inner
    offs = r.to(tl.int64) * inner + col
    ch = r % C
    a = tl.load(w + ch) / tl.sqrt_rn(tl.load(var + ch) + 1e-5)
    v = (tl.load(x + offs, mask=mask) - tl.load(mean + ch)) * a + tl.load(b + ch)
    tl.store(out + offs, v, mask=mask)


@triton.jit
def dit_tile(x, r, shift, scale, gate, out, tokens, H: tl.constexpr, T: tl.constexpr, HB: tl.constexpr):
    b = tl.program_id(0)
    t = tl.program_id(1) * T + tl.arange(0, T)[:, None]
    h = tl.program_id(2) * HB + tl.arange(0, HB)[None, :]
    hm = h < H
    vec = b.to(tl.int64) * H + h
    sh = tl.load(shift + vec, mask=hm)
    sc = tl.load(scale + vec, mask=hm)
    ga = tl.load(gate + vec, mask=hm)
    mask = (t < tokens) & hm
    offs = (b.to(tl.int64) * tokens + t) * H + h
    xv = tl.load(x + offs, mask=mask)
    rv = tl.load(r + offs, mask=mask)
    tl.store(out + offs, rv + ga * (xv * (1 + sc) + sh), mask=mask)


@triton.jit
def rev_cumsum_sub(x, out, rows, cols, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]
    c = tl.arange(0, BLOCK)[None, :]
    mask = (row < rows) & (c < cols)
    v = tl.load(x + row * cols + c, mask=mask, other=0.0)
    inc = tl.cumsum(v, axis=1)
    total = tl.sum(v, axis=1, keep_dims=True)
    tl.store(out + row * cols + c, total - inc + v, mask=mask)


@triton.jit
def rev_cumsum_rev(x, out, rows, cols, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]
    c = tl.arange(0, BLOCK)[None, :]
    mask = (row < rows) & (c < cols)
    v = tl.load(x + row * cols + c, mask=mask, other=0.0)
    tl.store(out + row * cols + c, tl.cumsum(v, axis=1, reverse=True), mask=mask)


@triton.jit
def rev_cumsum_flip(x, out, rows, cols, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]
    c = tl.arange(0, BLOCK)[None, :]
    mask = (row < rows) & (c < cols)
    v = tl.load(x + row * cols + c, mask=mask, other=0.0)
    w = tl.flip(v, 1)
    tl.store(out + row * cols + c, tl.flip(tl.cumsum(w, axis=1), 1), mask=mask)


ONE_EXP_FROM = ('m_new = tl.maximum(m_lane, v)\n{i}safe = tl.where(m_new == -float("inf"), 0.0, m_new)\n'
                '{i}s_lane = s_lane * tl.exp(m_lane - safe) + tl.exp(v - safe)\n{i}m_lane = m_new\n')
ONE_EXP_TO = ('d = tl.where(v == m_lane, 0.0, v - m_lane)\n{i}e = tl.exp(-tl.abs(d))\n'
              '{i}s_lane = tl.where(d > 0.0, s_lane * e + 1.0, s_lane + e)\n{i}m_lane = tl.maximum(m_lane, v)\n')


def one_exp(src):
    for ind in (8, 12):
        i = " " * ind
        src = src.replace(ONE_EXP_FROM.format(i=i), ONE_EXP_TO.format(i=i))
    assert "d = tl.where(v == m_lane" in src, "one-exp transform did not apply"
    return src


def want(name):
    return ONLY is None or name in ONLY


def main():
    if want("reduce_logsumexp"):
        c = Case("reduce_logsumexp")
        for block, warps in [(2048, 8), (1024, 8), (4096, 8), (4096, 16), (8192, 16)]:
            s = c.source("triton.row_reduce", strategy="looped", BLOCK=block, num_warps=warps)
            c.time_source(f"looped {block}/{warps}", s)
            c.time_source(f"looped one-exp {block}/{warps}", one_exp(s))
        for warps in (16, 32):
            c.time_source(f"single {warps}", c.source("triton.row_reduce", strategy="single_pass", num_warps=warps))
    for task, log in (("softmax_vocab", False), ("softmax_log_softmax", True)):
        if not want(task):
            continue
        c = Case(task)
        x = c.inputs[0]
        cols = x.shape[-1]; rows = x.numel() // cols
        for block, warps in [(2048, 16), (4096, 16), (8192, 16)]:
            s = c.source("triton.row_reduce", strategy="looped", BLOCK=block, num_warps=warps)
            c.time_source(f"template looped {block}/{warps}", s)
            c.time_source(f"template looped one-exp {block}/{warps}", one_exp(s))
            for one, ev in ((0, 1), (1, 1)):
                c.time_fn(f"soft2 {block}/{warps} one_exp={one} evict={ev}", lambda: (
                    lambda o: (soft2[(rows,)](x, o, cols, BLOCK=block, LOG=log, ONE_EXP=one, EVICT=ev, num_warps=warps), o)[1])(torch.empty_like(x)))
        for chunk, warps, per_sm in [(16384, 16, 1), (8192, 8, 1), (8192, 8, 2), (4096, 8, 2), (4096, 4, 4), (16384, 32, 1)]:
            K = triton.cdiv(cols, chunk)
            c.time_fn(f"coop chunk={chunk} K={K} warps={warps} per_sm={per_sm}", lambda: coop_softmax(x, log, chunk, warps, per_sm))
    if want("norm_instancenorm"):
        c = Case("norm_instancenorm")
        x = c.inputs[0]
        for block, warps in [(2048, 8), (4096, 8), (4096, 16)]:
            c.time_source(f"template looped {block}/{warps}", c.source("triton.norm", strategy="looped", BLOCK=block, num_warps=warps))
        for chunk, warps, per_sm in [(8192, 8, 1), (8192, 8, 2), (8192, 16, 1), (16384, 16, 1), (4096, 4, 4), (4096, 8, 2)]:
            c.time_fn(f"coop chunk={chunk} warps={warps} per_sm={per_sm}", lambda: coop_norm(x, 1e-5, chunk, warps, per_sm))
    if want("pointwise_leaky_clamp"):
        c = Case("pointwise_leaky_clamp")
        x = c.inputs[0]; n, ch, h, w = x.shape
        for block, warps in [(512, 4), (1024, 4), (2048, 8), (1024, 8)]:
            c.time_source(f"template flat {block}/{warps}", c.source("triton.pointwise", strategy="flat", BLOCK=block, num_warps=warps))
            c.time_source(f"template rows {block}/{warps}", c.source("triton.pointwise", strategy="rows", BLOCK=block, num_warps=warps))
        for block, warps in [(1024, 4), (2048, 4), (2048, 8), (4096, 8), (512, 4)]:
            c.time_fn(f"plane scalar {block}/{warps}", lambda: (lambda o: (plane_affine_leaky[(n * ch, triton.cdiv(h * w, block))](
                x, c.ref.scale, c.ref.shift, o, h * w, C=ch, BLOCK=block, num_warps=warps), o)[1])(torch.empty_like(x)))
    if want("norm_batchnorm_inference"):
        c = Case("norm_batchnorm_inference")
        x = c.inputs[0]; n, ch, h, w = x.shape; bn = c.ref.bn
        for block, warps in [(1024, 4), (2048, 8)]:
            c.time_source(f"template flat {block}/{warps}", c.source("triton.pointwise", strategy="flat", BLOCK=block, num_warps=warps))
            c.time_source(f"template rows {block}/{warps}", c.source("triton.pointwise", strategy="rows", BLOCK=block, num_warps=warps))
        for block, warps in [(1024, 4), (2048, 4), (2048, 8), (4096, 8), (4096, 16)]:
            c.time_fn(f"plane scalar {block}/{warps}", lambda: (lambda o: (plane_bn[(n * ch, triton.cdiv(h * w, block))](
                x, bn.running_mean, bn.running_var, bn.weight, bn.bias, o, h * w, C=ch, BLOCK=block, num_warps=warps), o)[1])(torch.empty_like(x)))
    if want("pointwise_broadcast_chain"):
        c = Case("pointwise_broadcast_chain")
        x, r, shift, scale, gate = c.inputs; b, tokens, hid = x.shape
        for block, warps in [(1024, 4), (2048, 8)]:
            c.time_source(f"template flat {block}/{warps}", c.source("triton.pointwise", strategy="flat", BLOCK=block, num_warps=warps))
            c.time_source(f"template rows {block}/{warps}", c.source("triton.pointwise", strategy="rows", BLOCK=block, num_warps=warps))
        for T, HB, warps in [(8, 128, 4), (16, 128, 4), (32, 128, 8), (8, 256, 4), (16, 256, 8), (4, 512, 4), (2, 1024, 4)]:
            c.time_fn(f"tile T={T} HB={HB} w={warps}", lambda: (lambda o: (dit_tile[(b, triton.cdiv(tokens, T), triton.cdiv(hid, HB))](
                x, r, shift, scale, gate, o, tokens, H=hid, T=T, HB=HB, num_warps=warps), o)[1])(torch.empty_like(x)))
    if want("reduce_reverse_cumsum"):
        c = Case("reduce_reverse_cumsum")
        x = c.inputs[0]; rows, cols = x.shape
        for block, warps in [(1024, 4), (1024, 8), (2048, 8), (4096, 8), (512, 4)]:
            c.time_source(f"template {block}/{warps}", c.source("triton.scan", BLOCK=block, num_warps=warps))
        for kern in (rev_cumsum_sub, rev_cumsum_rev, rev_cumsum_flip):
            for R, warps in [(1, 4), (2, 8), (4, 8)]:
                c.time_fn(f"{kern.__name__} R={R} w={warps}", lambda: (lambda o: (kern[(triton.cdiv(rows, R),)](
                    x, o, rows, cols, BLOCK=1024, ROWS=R, num_warps=warps), o)[1])(torch.empty_like(x)))
    if want("reduce_cumsum_topp"):
        c = Case("reduce_cumsum_topp")
        for block, warps in [(4096, 8), (2048, 8), (8192, 16)]:
            c.time_source(f"template {block}/{warps}", c.source("triton.scan", BLOCK=block, num_warps=warps))
    if want("norm_rmsnorm"):
        c = Case("norm_rmsnorm")
        for warps in (4, 8, 16, 32):
            c.time_source(f"single {warps}", c.source("triton.norm", strategy="single_pass", num_warps=warps))
        for block, warps in [(1024, 4), (2048, 8)]:
            c.time_source(f"looped {block}/{warps}", c.source("triton.norm", strategy="looped", BLOCK=block, num_warps=warps))
    if want("loss_kl_distill"):
        c = Case("loss_kl_distill")
        for strategy in ("tile", "lane"):
            for block, warps in [(4096, 16), (2048, 8), (4096, 8), (1024, 4)]:
                c.time_source(f"{strategy} {block}/{warps}", c.source("triton.kl_div", strategy=strategy, BLOCK=block, num_warps=warps))
    if want("norm_groupnorm"):
        c = Case("norm_groupnorm")
        for block, warps in [(4096, 8), (2048, 8), (8192, 16)]:
            try:
                c.time_source(f"template {block}/{warps}", c.source("triton.group_norm", BLOCK=block, num_warps=warps))
            except Exception as e:
                print("  template group_norm params:", e)


if __name__ == "__main__":
    try:
        main()
    finally:
        out = os.environ.get("OUT", ".")
        json.dump(RESULTS, open(os.path.join(out, "explore.json"), "w"), indent=1)
