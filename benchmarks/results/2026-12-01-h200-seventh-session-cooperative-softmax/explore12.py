"""explore12 (from explore7): eviction hints. Seventh session: why the softmax_cooperative candidate (46-60 % of the speed of light) is slower than the sixth
session's probe kernel (explore4/6's soft_lagreg, 71-74 %). Variants of the template's kernel, by flags:
EDGES (the 32-lane edge tensors and their two extra reductions), MASK32 (the chunk's mask as lane < a scalar
int32 limit, not int64 offsets compared per element), HOLD (softmax holds exp(x - m) and scales it, instead of
holding x and taking exp again at the write)."""
import sys, os, math
sys.path.insert(0, ".bench-state")
import torch, triton, triton.language as tl
import explore as E
from explore import Case


@triton.jit
def place(row, cols, k, chunk, lane, edge, MASK32: tl.constexpr):
    start = row.to(tl.int64) * cols
    end = start + cols
    lo = (start + 15) // 16 * 16
    hi = end // 16 * 16
    base = lo + k * chunk
    offs = base + lane
    if MASK32:
        inside = lane < tl.minimum(chunk, hi - base).to(tl.int32)
    else:
        inside = (lane < chunk) & (offs < hi)
    edge_offs = tl.where(edge < 16, start + edge, hi + edge - 16)
    edge_inside = (tl.where(edge < 16, (edge_offs < lo) & (edge_offs < end), (edge_offs >= lo) & (edge_offs < end))
                   & (edge + k * 32 < 32))
    return offs, inside, edge_offs, edge_inside


@triton.jit
def part(x_ptr, stats, counter, row, publish, cols, k, K, chunk, lane, edge, LOG: tl.constexpr,
         EDGES: tl.constexpr, MASK32: tl.constexpr, HOLD: tl.constexpr, EVICT: tl.constexpr):
    offs, inside, edge_offs, edge_inside = place(row, cols, k, chunk, lane, edge, MASK32)
    if EVICT:
        x = tl.load(x_ptr + offs, mask=inside, other=-float("inf"), eviction_policy="evict_first")
    else:
        x = tl.load(x_ptr + offs, mask=inside, other=-float("inf"))
    if EDGES:
        x_edge = tl.load(x_ptr + edge_offs, mask=edge_inside, other=-float("inf"))
        m = tl.maximum(tl.max(x, axis=0), tl.max(x_edge, axis=0))
    else:
        x_edge = tl.zeros([32], tl.float32)
        m = tl.max(x, axis=0)
    m_safe = tl.where(m == -float("inf"), 0.0, m)
    e = tl.exp(x - m_safe)
    s = tl.sum(e, axis=0)
    if EDGES:
        e_edge = tl.exp(x_edge - m_safe)
        s += tl.sum(e_edge, axis=0)
    else:
        e_edge = x_edge
    if publish:
        at = stats + (row * K + k) * 2
        tl.store(at, m)
        tl.store(at + 1, s)
        tl.debug_barrier()
        tl.atomic_add(counter + row, 1, sem="release")
    if not LOG:
        if HOLD:
            x = e
            x_edge = e_edge
    return x, x_edge, m


@triton.jit(do_not_specialize=["rows", "groups"])
def coop(x_ptr, out, stats, counter, rows, cols, chunk, groups, K, KP: tl.constexpr, CHUNK: tl.constexpr,
         LOG: tl.constexpr, EDGES: tl.constexpr, MASK32: tl.constexpr, HOLD: tl.constexpr, EVICT: tl.constexpr):
    pid = tl.program_id(0)
    k = pid % K
    lane = tl.arange(0, CHUNK)
    edge = tl.arange(0, 32)
    ks = tl.arange(0, KP)
    first = pid // K
    x, x_edge, m = part(x_ptr, stats, counter, tl.maximum(tl.minimum(first, rows - 1), 0), first < rows, cols,
                        k, K, chunk, lane, edge, LOG, EDGES, MASK32, HOLD, EVICT)
    for step in range(0, tl.cdiv(rows - first, groups)):
        row = first + step * groups
        following = row + groups
        x_next, edge_next, m_next = part(x_ptr, stats, counter, tl.minimum(following, rows - 1), following < rows,
                                         cols, k, K, chunk, lane, edge, LOG, EDGES, MASK32, HOLD, EVICT)
        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
        at = stats + (row * K + ks) * 2
        maxes = tl.load(at, mask=ks < K, other=-float("inf"), cache_modifier=".cg")
        big = tl.max(maxes, axis=0)
        total = tl.sum(tl.load(at + 1, mask=ks < K, other=0.0, cache_modifier=".cg") * tl.exp(maxes - big), axis=0)
        if LOG:
            shift = big + tl.log(total)
            y = x - shift
            y_edge = x_edge - shift
        elif HOLD:
            scale = tl.exp(m - big) / total
            y = x * scale
            y_edge = x_edge * scale
        else:
            y = tl.exp(x - big) * (1.0 / total)
            y_edge = tl.exp(x_edge - big) * (1.0 / total)
        offs, inside, edge_offs, edge_inside = place(row, cols, k, chunk, lane, edge, MASK32)
        if EVICT:
            tl.store(out + offs, y, mask=inside, cache_modifier=".cs")
        else:
            tl.store(out + offs, y, mask=inside)
        if EDGES:
            tl.store(out + edge_offs, y_edge, mask=edge_inside)
        x = x_next
        x_edge = edge_next
        m = m_next


def resident(compiled, warps):
    props = torch.cuda.get_device_properties(0)
    per_warp = math.ceil(compiled.n_regs * 32 / 256) * 256
    return min(65536 // (per_warp * warps), props.max_threads_per_multi_processor // (32 * warps),
               props.shared_memory_per_multiprocessor // (compiled.metadata.shared + 1024), 32) * props.multi_processor_count


def variant(case, x, log, block, warps, maxnreg, **flags):
    rows = x.numel() // x.shape[-1]; cols = x.shape[-1]
    chunk = triton.cdiv(triton.cdiv(cols, triton.cdiv(cols, block)), 16) * 16
    K = triton.cdiv(cols, chunk)
    out = torch.empty_like(x)
    stats = torch.empty(rows * K * 2, device="cuda"); counter = torch.zeros(rows, dtype=torch.int32, device="cuda")
    opts = dict(KP=triton.next_power_of_2(K), CHUNK=block, LOG=log, num_warps=warps, **flags)
    if maxnreg:
        opts["maxnreg"] = maxnreg
    compiled = coop[(1,)](x, out, stats, counter, 0, cols, chunk, 1, K, **opts)
    groups = min(resident(compiled, warps) // K, rows)

    def run():
        counter.zero_()
        coop[(groups * K,)](x, out, stats, counter, rows, cols, chunk, groups, K, **opts, launch_cooperative_grid=True)
        return out
    label = f"{block}/{warps}w/r{maxnreg} regs={compiled.n_regs} groups={groups} " + " ".join(f"{k}={int(v)}" for k, v in flags.items())
    case.time_fn(label, run)


NORM_EDITS = [("t0 = tl.load(in0 + offs, mask=mask, other=0.0)", 't0 = tl.load(in0 + offs, mask=mask, other=0.0, eviction_policy="evict_first")'),
              ("tl.store(out + offs, y.to(out.dtype.element_ty), mask=inside)", 'tl.store(out + offs, y.to(out.dtype.element_ty), mask=inside, cache_modifier=".cs")')]


def main():
    for task, log in (("softmax_vocab", False), ("softmax_log_softmax", True)):
        c = Case(task)
        x = c.inputs[0]
        for block, warps, maxnreg in ((2048, 4, 0), (1024, 4, 0), (1024, 2, 0), (2048, 8, 0), (4096, 8, 0)):
            for evict in (False, True):
                variant(c, x, log, block, warps, maxnreg, EDGES=log, MASK32=True, HOLD=True, EVICT=evict)
    for task in ("norm_groupnorm",):
        c = Case(task)
        for params in ({}, {"CHUNK": 8192, "num_warps": 8}, {"CHUNK": 2048, "num_warps": 2}):
            base = c.source("triton.norm_cooperative", **params)
            edited = base
            for old, new in NORM_EDITS:
                assert old in edited
                edited = edited.replace(old, new)
            c.time_source(f"template {params}", base)
            c.time_source(f"template evict {params}", edited)


if __name__ == "__main__":
    main()
