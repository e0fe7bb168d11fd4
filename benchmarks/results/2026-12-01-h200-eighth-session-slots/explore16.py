"""Eighth session: group norm (78 % with the register-held cooperative kernel: 256 programs per group of 1M
elements, 2 groups in flight) by reading each chunk twice, the second time from L2: a program loads its chunk
of the row LOOK rows ahead for the statistics only (published in a slot or at a counter), then waits for the
current row, loads its chunk again (an L2 hit if it stayed) and writes it. Holding no chunk across the wait
leaves registers for more programs and rows in flight. HINT: the first load evict_last, the second
evict_first, the store streaming."""
import sys, math
sys.path.insert(0, ".bench-state")
import torch, triton, triton.language as tl
from explore import Case


@triton.jit
def pack(a, b):
    return ((b.to(tl.uint32, bitcast=True) | 0x80000000).to(tl.int64) << 32) | a.to(tl.uint32, bitcast=True).to(tl.int64)


@triton.jit
def moments(x_ptr, stats, counter, row, cols, c, inside, n, k, K, SLOTS: tl.constexpr, HINT: tl.constexpr):
    if HINT:
        v = tl.load(x_ptr + row.to(tl.int64) * cols + c, mask=inside, other=0.0, eviction_policy="evict_last")
    else:
        v = tl.load(x_ptr + row.to(tl.int64) * cols + c, mask=inside, other=0.0)
    mean = tl.sum(v, axis=0) / n
    d = tl.where(inside, v - mean, 0.0)
    m2 = tl.sum(d * d, axis=0)
    if SLOTS:
        tl.atomic_xchg(stats + row * K + k, pack(mean, m2), sem="relaxed")
    else:
        at = stats.to(tl.pointer_type(tl.float32)) + (row * K + k) * 2
        tl.store(at, mean)
        tl.store(at + 1, m2)
        tl.debug_barrier()
        tl.atomic_add(counter + row, 1, sem="release")


@triton.jit(do_not_specialize=["rows", "ngroups"])
def gn_l2(x_ptr, w_ptr, b_ptr, out, stats, counter, rows, cols, hw, per_group, G, chunk, ngroups, K, eps,
          KP: tl.constexpr, CHUNK: tl.constexpr, LOOK: tl.constexpr, SLOTS: tl.constexpr, HINT: tl.constexpr):
    pid = tl.program_id(0)
    k = pid % K
    first = pid // K
    lane = tl.arange(0, CHUNK)
    c = k * chunk + lane
    inside = (lane < chunk) & (c < cols)
    n = tl.minimum(cols - k * chunk, chunk).to(tl.float32)
    ks = tl.arange(0, KP)
    ns = tl.where(ks < K, tl.minimum(cols - ks * chunk, chunk), 0).to(tl.float32)
    for j in tl.static_range(LOOK):
        r = first + j * ngroups
        if r < rows:
            moments(x_ptr, stats, counter, r, cols, c, inside, n, k, K, SLOTS, HINT)
    for step in range(0, tl.cdiv(rows - first, ngroups)):
        row = first + step * ngroups
        ahead = row + LOOK * ngroups
        if ahead < rows:
            moments(x_ptr, stats, counter, ahead, cols, c, inside, n, k, K, SLOTS, HINT)
        if SLOTS:
            slots = tl.load(stats + row * K + ks, mask=ks < K, other=1, volatile=True)
            while tl.min(tl.where(slots != 0, 1, 0), axis=0) == 0:
                slots = tl.load(stats + row * K + ks, mask=ks < K, other=1, volatile=True)
            means = (slots & 0xFFFFFFFF).to(tl.uint32).to(tl.float32, bitcast=True)
            squares = ((slots >> 32) & 0x7FFFFFFF).to(tl.uint32).to(tl.float32, bitcast=True)
        else:
            while tl.atomic_add(counter + row, 0, sem="acquire") < K:
                pass
            at = stats.to(tl.pointer_type(tl.float32)) + (row * K + ks) * 2
            means = tl.load(at, mask=ks < K, other=0.0, cache_modifier=".cg")
            squares = tl.load(at + 1, mask=ks < K, other=0.0, cache_modifier=".cg")
        means = tl.where(ks < K, means, 0.0)
        squares = tl.where(ks < K, squares, 0.0)
        mean = tl.sum(means * ns, axis=0) / cols
        var = (tl.sum(squares, axis=0) + tl.sum(ns * (means - mean) * (means - mean), axis=0)) / cols
        rstd = 1.0 / tl.sqrt_rn(var + eps)
        channel = (row % G) * per_group + (k * chunk) // hw
        scale = tl.load(w_ptr + channel) * rstd
        shift = tl.load(b_ptr + channel) - mean * scale
        offs = row.to(tl.int64) * cols + c
        if HINT:
            x = tl.load(x_ptr + offs, mask=inside, other=0.0, eviction_policy="evict_first")
            tl.store(out + offs, x * scale + shift, mask=inside, cache_modifier=".cs")
        else:
            x = tl.load(x_ptr + offs, mask=inside, other=0.0)
            tl.store(out + offs, x * scale + shift, mask=inside)


def resident(compiled, warps):
    props = torch.cuda.get_device_properties(0)
    per_warp = math.ceil(compiled.n_regs * 32 / 256) * 256
    return min(65536 // (per_warp * warps), props.max_threads_per_multi_processor // (32 * warps),
               props.shared_memory_per_multiprocessor // (compiled.metadata.shared + 1024), 32) * props.multi_processor_count


def variant(case, block, warps, maxnreg, look, slots, hint, per_sm=None):
    x = case.inputs[0]
    norm = case.ref.norm
    G = norm.num_groups
    N, C = x.shape[:2]
    hw = x[0, 0].numel()
    rows, cols = N * G, C // G * hw
    chunk = block
    K = triton.cdiv(cols, chunk)
    out = torch.empty_like(x)
    stats = torch.zeros(rows * K, dtype=torch.int64, device="cuda")
    counter = torch.zeros(rows, dtype=torch.int32, device="cuda")
    opts = dict(KP=triton.next_power_of_2(K), CHUNK=block, LOOK=look, SLOTS=slots, HINT=hint, num_warps=warps)
    if maxnreg:
        opts["maxnreg"] = maxnreg
    args = (x, norm.weight, norm.bias, out, stats, counter)
    compiled = gn_l2[(1,)](*args, 0, cols, hw, C // G, G, chunk, 1, K, norm.eps, **opts)
    fit = resident(compiled, warps)
    if per_sm:
        fit = min(fit, per_sm * 132)
    ngroups = min(fit // K, rows)
    if ngroups < 1:
        print("  no fit", block, warps, fit, K)
        return

    def run():
        stats.zero_()
        counter.zero_()
        gn_l2[(ngroups * K,)](*args, rows, cols, hw, C // G, G, chunk, ngroups, K, norm.eps, **opts,
                              launch_cooperative_grid=True)
        return out
    label = f"{block}/{warps}w/r{maxnreg} regs={compiled.n_regs} ngroups={ngroups} LOOK={look} SLOTS={int(slots)} HINT={int(hint)}"
    case.time_fn(label, run)


def main():
    c = Case("norm_groupnorm")
    c.time_source("template (counter) 4096/4w/r128", c.source("triton.norm_cooperative", SLOTS=False))
    for block, warps, maxnreg in ((4096, 4, 0), (4096, 8, 0), (8192, 8, 0), (2048, 4, 0)):
        for look in (1, 2):
            for slots in (False, True):
                variant(c, block, warps, maxnreg, look, slots, False)
        variant(c, block, warps, maxnreg, 1, False, True)
    for look in (1, 2, 3):
        variant(c, 4096, 4, 0, look, False, False)


if __name__ == "__main__":
    main()
