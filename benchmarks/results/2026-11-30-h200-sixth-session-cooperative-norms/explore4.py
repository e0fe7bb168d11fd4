"""Exploration (sixth session): cooperative row kernels that keep each chunk in registers with a one-row lag.

K programs share a row, each owning a chunk held in registers. A program publishes its chunk's statistics,
loads (and publishes) its chunk of the next row, and only then waits for the current row's other chunks and
writes the current chunk from registers: one read and one write per element, the wait hidden behind a load.
The grid is clamped to what fits on the GPU at once (from the compiled kernel's registers), since programs
wait on each other."""
import sys, math
sys.path.insert(0, ".bench-state")
sys.argv = [sys.argv[0], "none"]
import torch, triton, triton.language as tl
import explore as E
from explore import Case, NUM_SMS, RESULTS


@triton.jit
def _publish_soft(v, stats, counter, row, k, K):
    m = tl.max(v, 0)
    s = tl.sum(tl.exp(v - m), 0)
    tl.store(stats + (row * K + k) * 2, m)
    tl.store(stats + (row * K + k) * 2 + 1, s)
    tl.debug_barrier()
    tl.atomic_add(counter + row, 1, sem="release")


@triton.jit
def soft_lagreg(x, out, stats, counter, rows, cols, chunk, groups, K, KP: tl.constexpr, CHUNK: tl.constexpr, LOG: tl.constexpr):
    pid = tl.program_id(0)
    g = pid // K
    k = pid % K
    offs = tl.arange(0, CHUNK)
    c = k * chunk + offs
    mask = (offs < chunk) & (c < cols)
    ks = tl.arange(0, KP)
    km = ks < K
    cur = tl.load(x + g.to(tl.int64) * cols + c, mask=mask & (g < rows), other=-float("inf"))
    if g < rows:
        _publish_soft(cur, stats, counter, g, k, K)
    for row in range(g, rows, groups):
        nrow = row + groups
        nxt = tl.load(x + nrow.to(tl.int64) * cols + c, mask=mask & (nrow < rows), other=-float("inf"))
        if nrow < rows:
            _publish_soft(nxt, stats, counter, nrow, k, K)
        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
        ms = tl.load(stats + (row * K + ks) * 2, mask=km, other=-float("inf"), cache_modifier=".cg")
        ss = tl.load(stats + (row * K + ks) * 2 + 1, mask=km, other=0.0, cache_modifier=".cg")
        M = tl.max(ms, 0)
        S = tl.sum(ss * tl.exp(ms - M), 0)
        if LOG:
            y = cur - M - tl.log(S)
        else:
            y = tl.exp(cur - M) * (1.0 / S)
        tl.store(out + row.to(tl.int64) * cols + c, y, mask=mask)
        cur = nxt


@triton.jit
def _publish_norm(v, mask, stats, counter, row, k, K, n):
    mean = tl.sum(v, 0) / n
    d = tl.where(mask, v - mean, 0.0)
    tl.store(stats + (row * K + k) * 2, mean)
    tl.store(stats + (row * K + k) * 2 + 1, tl.sum(d * d, 0))
    tl.debug_barrier()
    tl.atomic_add(counter + row, 1, sem="release")


@triton.jit
def norm_lagreg(x, out, w, b, stats, counter, rows, cols, chunk, groups, K, eps, G, CPG, HW,
                KP: tl.constexpr, CHUNK: tl.constexpr, AFFINE: tl.constexpr):
    pid = tl.program_id(0)
    g = pid // K
    k = pid % K
    offs = tl.arange(0, CHUNK)
    c = k * chunk + offs
    mask = (offs < chunk) & (c < cols)
    n = tl.minimum(cols - k * chunk, chunk).to(tl.float32)
    ks = tl.arange(0, KP)
    km = ks < K
    ns = tl.where(km, tl.minimum(cols - ks * chunk, chunk), 0).to(tl.float32)
    cur = tl.load(x + g.to(tl.int64) * cols + c, mask=mask & (g < rows), other=0.0)
    if g < rows:
        _publish_norm(cur, mask, stats, counter, g, k, K, n)
    for row in range(g, rows, groups):
        nrow = row + groups
        nxt = tl.load(x + nrow.to(tl.int64) * cols + c, mask=mask & (nrow < rows), other=0.0)
        if nrow < rows:
            _publish_norm(nxt, mask, stats, counter, nrow, k, K, n)
        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
        means = tl.load(stats + (row * K + ks) * 2, mask=km, other=0.0, cache_modifier=".cg")
        m2s = tl.load(stats + (row * K + ks) * 2 + 1, mask=km, other=0.0, cache_modifier=".cg")
        mu = tl.sum(means * ns, 0) / cols
        var = (tl.sum(m2s, 0) + tl.sum(ns * (means - mu) * (means - mu), 0)) / cols
        rstd = 1.0 / tl.sqrt_rn(var + eps)
        y = (cur - mu) * rstd
        if AFFINE:
            ch = (row % G) * CPG + c // HW
            y = y * tl.load(w + ch, mask=mask, other=1.0) + tl.load(b + ch, mask=mask, other=0.0)
        tl.store(out + row.to(tl.int64) * cols + c, y, mask=mask)
        cur = nxt


def capacity(compiled, warps):
    """CTAs of this kernel that fit on one SM at once (registers, threads, shared memory)."""
    per_warp = math.ceil(compiled.n_regs * 32 / 256) * 256
    by_regs = 65536 // (per_warp * warps)
    by_threads = 2048 // (32 * warps)
    by_smem = (227 * 1024) // (compiled.metadata.shared + 1024)
    return max(min(by_regs, by_threads, by_smem, 32), 0)


class Lagged:
    def __init__(self, x, cols, CHUNK, warps, per_sm, kind, **kw):
        self.rows = x.numel() // cols; self.cols = cols
        self.K = triton.cdiv(cols, CHUNK); self.chunk = triton.cdiv(cols, self.K)
        assert (self.K - 1) * self.chunk < cols
        self.stats = torch.empty(self.rows * self.K * 2, device=x.device)
        self.counter = torch.zeros(self.rows, device=x.device, dtype=torch.int32)
        self.kind, self.kw, self.CHUNK, self.warps = kind, kw, CHUNK, warps
        probe = self.launch(x, torch.empty_like(x), rows=0, groups=1, programs=1)
        self.cap = capacity(probe, warps)
        self.regs, self.spills = probe.n_regs, probe.n_spills
        self.groups = max(NUM_SMS * min(per_sm, self.cap) // self.K, 0)
        self.ok = self.groups >= 1

    def launch(self, x, out, rows, groups, programs):
        common = dict(KP=triton.next_power_of_2(self.K), CHUNK=self.CHUNK, num_warps=self.warps)
        if self.kind == "soft":
            return soft_lagreg[(programs,)](x, out, self.stats, self.counter, rows, self.cols, self.chunk, groups,
                                            self.K, LOG=self.kw["log"], **common)
        kw = self.kw
        return norm_lagreg[(programs,)](x, out, kw["w"], kw["b"], self.stats, self.counter, rows, self.cols, self.chunk,
                                        groups, self.K, kw["eps"], kw["G"], kw["CPG"], kw["HW"], AFFINE=kw["affine"], **common)

    def __call__(self, x):
        out = torch.empty_like(x)
        self.counter.zero_()
        self.launch(x, out, self.rows, self.groups, self.groups * self.K)
        return out

    def label(self, per_sm):
        return (f"lagreg CHUNK={self.CHUNK} K={self.K} warps={self.warps} per_sm={per_sm} cap={self.cap} "
                f"groups={self.groups} regs={self.regs} spills={self.spills}")


CONFIGS = [(4096, 4, 4), (4096, 8, 2), (8192, 8, 2), (8192, 4, 2), (8192, 16, 1), (16384, 16, 1), (2048, 4, 4), (16384, 8, 1)]


def sweep(c, x, cols, kind, **kw):
    for CHUNK, warps, per_sm in CONFIGS:
        try:
            lag = Lagged(x, cols, CHUNK, warps, per_sm, kind, **kw)
        except Exception as e:
            print(f"  CHUNK={CHUNK} warps={warps}: setup ERROR {type(e).__name__}: {str(e)[:200]}", flush=True); continue
        if not lag.ok:
            print(f"  {lag.label(per_sm)}: skipped, K exceeds the programs that fit", flush=True); continue
        c.time_fn(lag.label(per_sm), lambda: lag(x))


def main():
    print(f"SMs {NUM_SMS}", flush=True)
    for task, log in (("softmax_vocab", False), ("softmax_log_softmax", True)):
        c = Case(task)
        x = c.inputs[0]
        sweep(c, x, x.shape[-1], "soft", log=log)
    c = Case("norm_instancenorm")
    x = c.inputs[0]
    sweep(c, x, x.shape[-1] * x.shape[-2], "norm", w=x, b=x, eps=1e-5, G=1, CPG=1, HW=1, affine=False)
    c = Case("norm_groupnorm")
    x = c.inputs[0]; N, C, H, W = x.shape; G = 32
    sweep(c, x, (C // G) * H * W, "norm", w=c.ref.norm.weight.detach(), b=c.ref.norm.bias.detach(), eps=1e-6,
          G=G, CPG=C // G, HW=H * W, affine=True)


if __name__ == "__main__":
    main()
