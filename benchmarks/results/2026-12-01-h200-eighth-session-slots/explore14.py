"""Eighth session: where the cooperative kernels lose their last 15-20 points. Variants of the templates'
kernels (the module's strings patched before rendering), by flags:
PACK: each program publishes its chunk's two statistics in one relaxed 64-bit atomic exchange into its own
      slot (zeroed; the second statistic's sign bit set, so a published slot is never 0), and waiters poll
      the row's K slots with volatile loads. No counter, no barrier, no release fence (which waits for the
      program's earlier output stores to drain).
REORDER: the next row's chunk is loaded before this row's wait but published after this row's write, so a
      load is in flight through the wait, the statistics' round trip and the write."""
import sys, itertools
sys.path.insert(0, ".bench-state")
import torch
from explore import Case
import kernelwright.generate.expert.templates.triton_cooperative as TC

ORIG = dict(_KERNEL=TC._KERNEL, _SOFTMAX_KERNEL=TC._SOFTMAX_KERNEL, _buffers=TC._buffers)

PACK_HELPERS = '''@triton.jit
def kw_pack(a, b):
    lo = a.to(tl.uint32, bitcast=True).to(tl.int64)
    hi = (b.to(tl.uint32, bitcast=True) | 0x80000000).to(tl.int64)
    return (hi << 32) | lo


@triton.jit
def kw_unpack(v):
    a = (v & 0xFFFFFFFF).to(tl.uint32).to(tl.float32, bitcast=True)
    b = ((v >> 32) & 0x7FFFFFFF).to(tl.uint32).to(tl.float32, bitcast=True)
    return a, b


@triton.jit
def kw_nap(NAP: tl.constexpr):
    if NAP:
        tl.inline_asm_elementwise("nanosleep.u32 200;\\nmov.u32 $0, 0;", "=r,r", [tl.zeros([1], tl.int32)],
                                  dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def kw_wait(at, mask, counter, row, K, COUNT: tl.constexpr, NAP: tl.constexpr):
    if COUNT:
        while tl.load(counter + row, volatile=True) < K:
            kw_nap(NAP)
    v = tl.load(at, mask=mask, other=1, volatile=True)
    while tl.min(tl.where(v != 0, 1, 0), axis=0) == 0:
        kw_nap(NAP)
        v = tl.load(at, mask=mask, other=1, volatile=True)
    return v


'''


def swap(text, old, new):
    assert old in text, old[:80]
    return text.replace(old, new)


def norm_kernel(pack, reorder, count=False, nap=False):
    t = ORIG["_KERNEL"]
    if pack:
        t = swap(t, '''    at = stats + (row * K + k) * 2
    if RMS:
        tl.store(at, tl.sum(v * v, axis=0))
    else:
        mean = tl.sum(v, axis=0) / n
        d = tl.where(mask, v - mean, 0.0)
        tl.store(at, mean)
        tl.store(at + 1, tl.sum(d * d, axis=0))
    tl.debug_barrier()  # every thread's stores come before the count that publishes them
    tl.atomic_add(counter + row, 1, sem="release")''', '''    if RMS:
        a = tl.sum(v * v, axis=0)
        b = a * 0.0
    else:
        a = tl.sum(v, axis=0) / n
        d = tl.where(mask, v - a, 0.0)
        b = tl.sum(d * d, axis=0)
    tl.atomic_xchg(stats + row * K + k, kw_pack(a, b), sem="relaxed")
    if COUNT:
        tl.atomic_add(counter + row, 1, sem="relaxed")''')
        t = swap(t, '''        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
        at = stats + (row * K + ks) * 2
        if RMS:
            rstd = 1.0 / tl.sqrt_rn(tl.sum(tl.load(at, mask=ks < K, other=0.0, cache_modifier=".cg"), axis=0) / cols + {eps})''',
                 '''        means, squares = kw_unpack(kw_wait(stats + row * K + ks, ks < K, counter, row, K, COUNT, NAP))
        means = tl.where(ks < K, means, 0.0)
        squares = tl.where(ks < K, squares, 0.0)
        if RMS:
            rstd = 1.0 / tl.sqrt_rn(tl.sum(means, axis=0) / cols + {eps})''')
        t = swap(t, '''            means = tl.load(at, mask=ks < K, other=0.0, cache_modifier=".cg")
            squares = tl.load(at + 1, mask=ks < K, other=0.0, cache_modifier=".cg")
''', "")
        t = PACK_HELPERS + t.replace("COUNT", str(count)).replace("NAP", str(nap))
    if reorder:
        pub = '''        if following < rows:
            kw_publish(x_next, inside, n, stats, counter, following, k, K, RMS)
'''
        t = swap(t, pub, "")
        t = swap(t, "        x = x_next\n", pub + "        x = x_next\n")
    return t


def softmax_kernel(pack, reorder, count=False, nap=False):
    t = ORIG["_SOFTMAX_KERNEL"]
    # kw_part split: kw_take loads, kw_give reduces and publishes.
    t = swap(t, '''def kw_part({args}stats, counter, row, publish, cols, k, K, chunk, lane, edge, LOG: tl.constexpr,
            EDGES: tl.constexpr):
    offs, c, inside, edge_offs, edge_c, edge_inside = kw_place(row, cols, k, chunk, lane, edge)
    x = {load}
    if EDGES:
        x_edge = {load_edge}
        m = tl.maximum(tl.max(x, axis=0), tl.max(x_edge, axis=0))
    else:
        x_edge = tl.full([32], -float("inf"), tl.float32)
        m = tl.max(x, axis=0)''', '''def kw_take({args}row, cols, k, chunk, lane, edge, EDGES: tl.constexpr):
    offs, c, inside, edge_offs, edge_c, edge_inside = kw_place(row, cols, k, chunk, lane, edge)
    x = {load}
    if EDGES:
        x_edge = {load_edge}
    else:
        x_edge = tl.full([32], -float("inf"), tl.float32)
    return x, x_edge


@triton.jit
def kw_give(x, x_edge, stats, counter, row, publish, k, K, LOG: tl.constexpr, EDGES: tl.constexpr):
    if EDGES:
        m = tl.maximum(tl.max(x, axis=0), tl.max(x_edge, axis=0))
    else:
        m = tl.max(x, axis=0)''')
    if pack:
        t = swap(t, '''        at = stats + (row * K + k) * 2
        tl.store(at, m)
        tl.store(at + 1, total)
        tl.debug_barrier()  # every thread's stores come before the count that publishes them
        tl.atomic_add(counter + row, 1, sem="release")''',
                 '''        tl.atomic_xchg(stats + row * K + k, kw_pack(m, total), sem="relaxed")
        if COUNT:
            tl.atomic_add(counter + row, 1, sem="relaxed")''')
        t = swap(t, '''        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
        at = stats + (row * K + ks) * 2
        maxes = tl.load(at, mask=ks < K, other=-float("inf"), cache_modifier=".cg")
        big = tl.max(maxes, axis=0)
        total = tl.sum(tl.load(at + 1, mask=ks < K, other=0.0, cache_modifier=".cg") * tl.exp(maxes - big), axis=0)''',
                 '''        maxes, sums = kw_unpack(kw_wait(stats + row * K + ks, ks < K, counter, row, K, COUNT, NAP))
        maxes = tl.where(ks < K, maxes, -float("inf"))
        big = tl.max(maxes, axis=0)
        total = tl.sum(tl.where(ks < K, sums, 0.0) * tl.exp(maxes - big), axis=0)''')
        t = PACK_HELPERS + t.replace("COUNT", str(count)).replace("NAP", str(nap))
    first_old = '''    x, x_edge, m = kw_part({args}stats, counter, tl.maximum(tl.minimum(first, rows - 1), 0), first < rows, cols,
                           k, K, chunk, lane, edge, LOG, EDGES)'''
    first_new = '''    x, x_edge = kw_take({args}tl.maximum(tl.minimum(first, rows - 1), 0), cols, k, chunk, lane, edge, EDGES)
    x, x_edge, m = kw_give(x, x_edge, stats, counter, first, first < rows, k, K, LOG, EDGES)'''
    t = swap(t, first_old, first_new)
    next_old = '''        x_next, edge_next, m_next = kw_part({args}stats, counter, tl.minimum(following, rows - 1), following < rows,
                                            cols, k, K, chunk, lane, edge, LOG, EDGES)
'''
    take = '''        x_next, edge_next = kw_take({args}tl.minimum(following, rows - 1), cols, k, chunk, lane, edge, EDGES)
'''
    give = '''        x_next, edge_next, m_next = kw_give(x_next, edge_next, stats, counter, following, following < rows, k, K,
                                            LOG, EDGES)
'''
    if reorder:
        t = swap(t, next_old, take)
        t = swap(t, "        x = x_next\n", give + "        x = x_next\n")
    else:
        t = swap(t, next_old, take + give)
    return t


def packed_buffers(rows, cols, params):
    lines = ORIG["_buffers"](rows, cols, params)
    old = "kw_stats = torch.empty(kw_n * kw_k * 2, dtype=torch.float32, device=kw_x.device)"
    assert old in lines
    return [("kw_stats = torch.zeros(kw_n * kw_k, dtype=torch.int64, device=kw_x.device)" if l == old else l)
            for l in lines]


def use(pack, reorder, count=False, nap=False):
    TC._KERNEL = norm_kernel(pack, reorder, count, nap)
    TC._SOFTMAX_KERNEL = softmax_kernel(pack, reorder, count, nap)
    TC._buffers = packed_buffers if pack else ORIG["_buffers"]


TASKS = {"softmax_vocab": "triton.softmax_cooperative", "softmax_log_softmax": "triton.softmax_cooperative",
         "norm_groupnorm": "triton.norm_cooperative", "norm_instancenorm": "triton.norm_cooperative"}
POINTS = {"triton.softmax_cooperative": [dict(), dict(CHUNK=4096, maxnreg=128), dict(CHUNK=4096, num_warps=8)],
          "triton.norm_cooperative": [dict(), dict(CHUNK=2048, num_warps=2), dict(CHUNK=8192, num_warps=8)]}


def main():
    only = sys.argv[1].split(",") if len(sys.argv) > 1 else list(TASKS)
    for task in only:
        c = Case(task)
        template = TASKS[task]
        for rnd in range(2):
            for pack, reorder in itertools.product((False, True), (False, True)):
                use(pack, reorder)
                for point in POINTS[template][: (3 if rnd == 0 else 1)]:
                    c.time_source(f"r{rnd} PACK={int(pack)} REORDER={int(reorder)} {point}", c.source(template, **point))
        use(False, False)


if __name__ == "__main__":
    main()
