"""Exploration (fifth session): persistent and lagged-cooperative two-pass kernels for rows too long for chip.

The second pass of softmax / log-softmax / instance norm re-reads its row; these prototypes try to make that
re-read an L2 hit by bounding the rows in flight: (a) one program per SM (or fewer) looping over whole rows,
second pass forward or reverse; (b) K programs per row, each owning a chunk, publishing its chunk's statistics,
and doing the first pass of its next row before waiting for the current row's other chunks (a one-row lag)."""
import sys, os, json, math
sys.path.insert(0, ".bench-state")
sys.argv = [sys.argv[0], "none"]  # explore.py reads argv[1] as a task filter
import torch, triton, triton.language as tl
import explore as E
from explore import Case, NUM_SMS, RESULTS


@triton.jit
def soft_persist(x, out, rows, cols, BLOCK: tl.constexpr, LOG: tl.constexpr, REVERSE: tl.constexpr, EVICT: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(0, tl.cdiv(rows - pid, tl.num_programs(0))):
        row = pid + i * tl.num_programs(0)
        base = row.to(tl.int64) * cols
        m_l = tl.full([BLOCK], -float("inf"), tl.float32)
        s_l = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, cols, BLOCK):
            c = start + tl.arange(0, BLOCK)
            if EVICT:
                v = tl.load(x + base + c, mask=c < cols, other=-float("inf"), eviction_policy="evict_last")
            else:
                v = tl.load(x + base + c, mask=c < cols, other=-float("inf"))
            m_n = tl.maximum(m_l, v)
            safe = tl.where(m_n == -float("inf"), 0.0, m_n)
            s_l = s_l * tl.exp(m_l - safe) + tl.exp(v - safe)
            m_l = m_n
        m = tl.max(m_l, 0)
        s = tl.sum(s_l * tl.exp(m_l - m), 0)
        last = (cols - 1) // BLOCK * BLOCK
        for i in range(0, cols, BLOCK):
            if REVERSE:
                c = last - i + tl.arange(0, BLOCK)
            else:
                c = i + tl.arange(0, BLOCK)
            if EVICT:
                v = tl.load(x + base + c, mask=c < cols, other=0.0, eviction_policy="evict_first")
            else:
                v = tl.load(x + base + c, mask=c < cols, other=0.0)
            if LOG:
                y = v - m - tl.log(s)
            else:
                y = tl.exp(v - m) * (1.0 / s)
            if EVICT:
                tl.store(out + base + c, y, mask=c < cols, eviction_policy="evict_first")
            else:
                tl.store(out + base + c, y, mask=c < cols)


@triton.jit
def norm_persist(x, out, rows, cols, eps, BLOCK: tl.constexpr, REVERSE: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(0, tl.cdiv(rows - pid, tl.num_programs(0))):
        row = pid + i * tl.num_programs(0)
        base = row.to(tl.int64) * cols
        s1 = tl.zeros([BLOCK], dtype=tl.float32)
        s2 = tl.zeros([BLOCK], dtype=tl.float32)
        shift = tl.load(x + base)
        for start in range(0, cols, BLOCK):
            c = start + tl.arange(0, BLOCK)
            v = tl.load(x + base + c, mask=c < cols, other=0.0)
            d = tl.where(c < cols, v - shift, 0.0)
            s1 += d
            s2 += d * d
        md = tl.sum(s1, 0) / cols
        var = tl.maximum(tl.sum(s2, 0) / cols - md * md, 0.0)
        mean = shift + md
        inv = 1.0 / tl.sqrt_rn(var + eps)
        last = (cols - 1) // BLOCK * BLOCK
        for i in range(0, cols, BLOCK):
            if REVERSE:
                c = last - i + tl.arange(0, BLOCK)
            else:
                c = i + tl.arange(0, BLOCK)
            v = tl.load(x + base + c, mask=c < cols, other=0.0)
            tl.store(out + base + c, (v - mean) * inv, mask=c < cols)


@triton.jit
def _soft_stats(x, stats, counter, row, cols, lo, hi, K, k, BLOCK: tl.constexpr):
    base = row.to(tl.int64) * cols
    m_l = tl.full([BLOCK], -float("inf"), tl.float32)
    s_l = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(lo, hi, BLOCK):
        c = start + tl.arange(0, BLOCK)
        v = tl.load(x + base + c, mask=c < hi, other=-float("inf"))
        m_n = tl.maximum(m_l, v)
        safe = tl.where(m_n == -float("inf"), 0.0, m_n)
        s_l = s_l * tl.exp(m_l - safe) + tl.exp(v - safe)
        m_l = m_n
    m = tl.max(m_l, 0)
    s = tl.sum(s_l * tl.exp(m_l - m), 0)
    tl.store(stats + (row * K + k) * 2, m)
    tl.store(stats + (row * K + k) * 2 + 1, s)
    tl.debug_barrier()
    tl.atomic_add(counter + row, 1, sem="release")


@triton.jit
def _soft_write(x, out, stats, counter, row, cols, lo, hi, K, target, KP: tl.constexpr, BLOCK: tl.constexpr, LOG: tl.constexpr):
    while tl.atomic_add(counter + row, 0, sem="acquire") < target:
        pass
    ks = tl.arange(0, KP)
    km = ks < K
    ms = tl.load(stats + (row * K + ks) * 2, mask=km, other=-float("inf"), cache_modifier=".cg")
    ss = tl.load(stats + (row * K + ks) * 2 + 1, mask=km, other=0.0, cache_modifier=".cg")
    M = tl.max(ms, 0)
    S = tl.sum(ss * tl.exp(ms - M), 0)
    base = row.to(tl.int64) * cols
    for start in range(lo, hi, BLOCK):
        c = start + tl.arange(0, BLOCK)
        v = tl.load(x + base + c, mask=c < hi, other=0.0)
        if LOG:
            y = v - M - tl.log(S)
        else:
            y = tl.exp(v - M) * (1.0 / S)
        tl.store(out + base + c, y, mask=c < hi)


@triton.jit
def soft_lag(x, out, stats, counter, rows, cols, groups, K, target, CHUNK: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr, LOG: tl.constexpr):
    pid = tl.program_id(0)
    g = pid // K
    k = pid % K
    lo = k * CHUNK
    hi = tl.minimum(lo + CHUNK, cols)
    if g < rows:
        _soft_stats(x, stats, counter, g, cols, lo, hi, K, k, BLOCK)
    for row in range(g, rows, groups):
        nxt = row + groups
        if nxt < rows:
            _soft_stats(x, stats, counter, nxt, cols, lo, hi, K, k, BLOCK)
        _soft_write(x, out, stats, counter, row, cols, lo, hi, K, target, KP, BLOCK, LOG)


class Lag:
    """Holds the counters between calls: each call waits for `calls * K` arrivals, so nothing is reset."""
    def __init__(self, x, chunk, per_sm, block, warps, log):
        self.cols = x.shape[-1]; self.rows = x.numel() // self.cols
        self.K = triton.cdiv(self.cols, chunk); self.chunk = chunk
        self.groups = max(NUM_SMS * per_sm // self.K, 1)
        self.stats = torch.empty(self.rows * self.K * 2, device=x.device)
        self.counter = torch.zeros(self.rows, device=x.device, dtype=torch.int32)
        self.calls = 0; self.block = block; self.warps = warps; self.log = log

    def __call__(self, x):
        self.calls += 1
        out = torch.empty_like(x)
        soft_lag[(self.groups * self.K,)](x, out, self.stats, self.counter, self.rows, self.cols, self.groups, self.K,
                                          self.calls * self.K, CHUNK=self.chunk, KP=triton.next_power_of_2(self.K),
                                          BLOCK=self.block, LOG=self.log, num_warps=self.warps)
        return out


def main():
    print(f"SMs {NUM_SMS}, L2 {torch.cuda.get_device_properties(0).L2_cache_size/2**20:.0f} MiB", flush=True)
    for task, log in (("softmax_log_softmax", True), ("softmax_vocab", False)):
        c = Case(task)
        x = c.inputs[0]; cols = x.shape[-1]; rows = x.numel() // cols
        for block, warps in [(8192, 16), (4096, 8), (4096, 16)]:
            for g in (NUM_SMS // 2, NUM_SMS, 2 * NUM_SMS):
                for rev, ev in ((0, 0), (1, 0), (1, 1)):
                    c.time_fn(f"persist {block}/{warps} G={g} rev={rev} ev={ev}", lambda: (
                        lambda o: (soft_persist[(g,)](x, o, rows, cols, BLOCK=block, LOG=log, REVERSE=rev, EVICT=ev, num_warps=warps), o)[1])(torch.empty_like(x)))
        for chunk, per_sm, block, warps in [(8192, 2, 2048, 8), (16384, 2, 4096, 8), (8192, 4, 2048, 4), (16384, 1, 4096, 16),
                                            (32768, 2, 4096, 8), (4096, 4, 1024, 4), (12800, 2, 1024, 8)]:
            lag = Lag(x, chunk, per_sm, block, warps, log)
            c.time_fn(f"lag chunk={chunk} K={lag.K} per_sm={per_sm} {block}/{warps} groups={lag.groups}", lambda: lag(x))
    c = Case("norm_instancenorm")
    x = c.inputs[0]; cols = x.shape[-1] * x.shape[-2]; rows = x.numel() // cols
    for block, warps in [(8192, 16), (4096, 8), (4096, 16)]:
        for g in (NUM_SMS // 2, NUM_SMS, 2 * NUM_SMS):
            for rev in (0, 1):
                c.time_fn(f"persist {block}/{warps} G={g} rev={rev}", lambda: (
                    lambda o: (norm_persist[(g,)](x, o, rows, cols, 1e-5, BLOCK=block, REVERSE=rev, num_warps=warps), o)[1])(torch.empty_like(x)))


if __name__ == "__main__":
    try:
        main()
    finally:
        json.dump(RESULTS, open(os.path.join(os.environ.get("OUT", "."), "explore3.json"), "w"), indent=1)
