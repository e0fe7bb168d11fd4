import torch, triton, triton.language as tl


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


