"""Triton templates for rows too long for one program (norms, softmax and log-softmax): K programs share a
row, each holding its chunk in registers, so that x is read once and the output written once.

The looped kernels read a long row twice (statistics, then the output) and so top out near two thirds of the
memory's speed (bench on an H200: instance norm 70 %, group norm 64 %, softmax 65 % of the speed of light).
Here each of a row's K programs loads its chunk, publishes the chunk's two statistics (norms: its mean and sum
of squared deviations, or its sum of squares for RMS norm; softmax: its max and sum of exponentials), and once
all K are in, every program combines them (Chan's formula for the moments, no cancellation) and writes its
chunk from registers.

A program publishes both statistics in one relaxed 64-bit atomic into a zeroed slot of its own, the second's
sign bit set so that a written slot is never 0, and waiters poll the row's K slots, again only where they
still read 0. The first form stored the statistics, then counted the program in at a per-row counter with
release semantics, whose fence also waits for the program's earlier output stores to drain: on an H200
(probes explore14-15, 18) the slots gained 3-10 points of the speed of light on softmax, log-softmax and
instance norm (to 89-92 %) and tie on group norm (77 %), where polling all 256 slots of its rows each
time, not only the unwritten ones, had lost 7.

Waiting for the other chunks would leave the memory idle, so each program runs one row ahead: it loads and
publishes its chunk of the next row before waiting for the current one. Programs wait on each other, so
they must all be on the GPU at once: the grid is what the compiled kernel's registers, threads and shared
memory let every SM hold (`kw_resident`), rows taken in turn, and the launch is cooperative, so that a grid
too large fails at launch instead of hanging.

Where a row is a whole number of chunks of CHUNK elements (EVEN: group norm's groups of 2^20 elements,
instance norm's planes of 2^16), the norm kernel's mask is one the compiler knows to be all true, and drops.
Its predicates and selects cost registers: with them group norm's kernel spilled at 128 registers a thread and
reached 78 % of the speed of light on an H200, without them 86 % (probes explore26-27).

Triton's interpreter (CPU) runs programs one after another, where a program cannot wait for a later one:
there the candidate gives each row one program (K = 1), which waits only for itself.

Parameters: CHUNK (elements a program holds, a power of two), num_warps, maxnreg (registers a thread may
use, which bounds how many programs an SM holds; 0 leaves it to the compiler).
"""

from __future__ import annotations

from typing import Any

from kernelwright.generate.expert.patterns import (
    NORMALIZATIONS,
    Analysis,
    Expr,
    Input,
    Norm,
    RowReduce,
    Value,
)
from kernelwright.generate.expert.templates.triton import (
    ALIGNED_ROW,
    NormTemplate,
    RowReduceTemplate,
    _doc,
    _Kernel,
    _row_width,
    norm_epilogue,
)
from kernelwright.generate.expert.templates.triton_group_norm import GroupNormTemplate

# Rows shorter than this fit one program's registers: the single-pass row kernels read them once already.
MIN_COLS = 16384

# stats: per row, K slots of 64 bits (see the module's doc): a chunk's two statistics, a >= anything, b >= 0.
_PUBLISH = """@triton.jit
def kw_pack(a, b):
    high = (b.to(tl.uint32, bitcast=True) | 0x80000000).to(tl.int64)
    return (high << 32) | a.to(tl.uint32, bitcast=True).to(tl.int64)


@triton.jit
def kw_unpack(slot):
    a = (slot & 0xFFFFFFFF).to(tl.uint32).to(tl.float32, bitcast=True)
    return a, ((slot >> 32) & 0x7FFFFFFF).to(tl.uint32).to(tl.float32, bitcast=True)


@triton.jit
def kw_publish(a, b, stats, row, k, K):
    tl.atomic_xchg(stats + row * K + k, kw_pack(a, b), sem="relaxed")


@triton.jit
def kw_gather(stats, row, K, ks):
    # Waits for the row's K chunks; their statistics a and b in lanes ks < K, 0 in the others. Slots already
    # read stay as read (masked lanes fetch nothing): polling all 256 of group norm's cost 7 points (explore18).
    slots = tl.load(stats + row * K + ks, mask=ks < K, other=1, volatile=True)
    while tl.min(tl.where(slots != 0, 1, 0), axis=0) == 0:
        slots = slots | tl.load(stats + row * K + ks, mask=(ks < K) & (slots == 0), other=0, volatile=True)
    a, b = kw_unpack(slots)
    return tl.where(ks < K, a, 0.0), tl.where(ks < K, b, 0.0)
"""

# Norms. A chunk's statistics: its mean and its sum of squared deviations (RMS: its sum of squares, and 0).
_KERNEL = """@triton.jit
def kw_moments(v, mask, n, stats, row, k, K, RMS: tl.constexpr):
    if RMS:
        kw_publish(tl.sum(v * v, axis=0), tl.zeros([], tl.float32), stats, row, k, K)
    else:
        mean = tl.sum(v, axis=0) / n
        d = tl.where(mask, v - mean, 0.0)
        kw_publish(mean, tl.sum(d * d, axis=0), stats, row, k, K)


@triton.jit(do_not_specialize=["rows", "groups"])  # the launch that sizes the grid compiles the same kernel
def kw_coop({args}{affine}out, stats, rows, cols, chunk, groups, K,
            {group}KP: tl.constexpr, CHUNK: tl.constexpr, RMS: tl.constexpr, EVEN: tl.constexpr):
    pid = tl.program_id(0)
    k = pid % K  # this program's chunk of each of its rows
    lane = tl.arange(0, CHUNK)
    c = k * chunk + lane
    if EVEN:  # every chunk CHUNK elements: a mask the compiler knows is all true
        inside = lane < CHUNK
    else:
        inside = (lane < chunk) & (c < cols)
    n = tl.minimum(cols - k * chunk, chunk).to(tl.float32)
    ks = tl.arange(0, KP)
    ns = tl.where(ks < K, tl.minimum(cols - ks * chunk, chunk), 0).to(tl.float32)
    # Loads past the last row read the last row again (or row 0 when there are none), and are not published:
    # the load need not wait on a branch.
    first = pid // K
    x = tl.where(inside, kw_prologue({args}tl.maximum(tl.minimum(first, rows - 1), 0).to(tl.int64) * cols + c, c,
                                     inside), 0.0)
    if first < rows:
        kw_moments(x, inside, n, stats, first, k, K, RMS)
    for step in range(0, tl.cdiv(rows - first, groups)):
        row = first + step * groups
        # The next row's chunk, loaded and published before this row's wait, which it hides.
        following = row + groups
        x_next = tl.where(inside, kw_prologue({args}tl.minimum(following, rows - 1).to(tl.int64) * cols + c, c,
                                              inside), 0.0)
        if following < rows:
            kw_moments(x_next, inside, n, stats, following, k, K, RMS)
        means, squares = kw_gather(stats, row, K, ks)
        if RMS:
            rstd = 1.0 / tl.sqrt_rn(tl.sum(means, axis=0) / cols + {eps})
            y = x * rstd
        else:
            mean = tl.sum(means * ns, axis=0) / cols
            var = (tl.sum(squares, axis=0) + tl.sum(ns * (means - mean) * (means - mean), axis=0)) / cols
            rstd = 1.0 / tl.sqrt_rn(var + {eps})
            y = (x - mean) * rstd
        offs = row.to(tl.int64) * cols + c
{scale}        y = kw_epilogue(y, {args}offs, c, inside)
        tl.store(out + offs, y.to(out.dtype.element_ty), mask=inside)
        x = x_next
"""
# Softmax and log-softmax. A chunk's statistics: its max m and its sum of exp(v - m). Softmax
# holds exp(v - m) in registers and scales it at the write by exp(m - M) / S: one exponential an element
# (H200 probe explore7: 81-82 % of the speed of light against 78-81 % taking the exponential again at the
# write).
# Rows whose start is not a multiple of 16 elements (a vocabulary of 50257) would make every load and
# store scalar: the chunks tile the row's 16-aligned interior (ALIGNED_ROW), loaded in vectors, and with EDGES
# program 0 also takes the up to 15 elements before and after it, one lane each (two more reductions a row, which
# cost 3-6 points where rows are aligned, so EDGES is off there). A chunk's mask compares the lane with one
# 32-bit bound, not each element's 64-bit offset with the interior's end (5 points on an H200). Where the
# prologue is the input itself, masked lanes load as -inf: tl.where(inside, v, -inf) over the loaded value
# cost 13 points on the vocabulary softmax and 29 on log-softmax (H200, Triton 3.6).
_SOFTMAX_KERNEL = """@triton.jit
def kw_place(row, cols, k, chunk, lane, edge):
    start = row.to(tl.int64) * cols
    lo, hi = kw_interior(start, cols)
    base = lo + k * chunk
    offs = base + lane
    inside = lane < tl.minimum(chunk, hi - base).to(tl.int32)
    edge_offs, edge_inside = kw_edges(start, cols, lo, hi)
    edge_inside = edge_inside & (edge + k * 32 < 32)  # program 0's
    return offs, offs - start, inside, edge_offs, edge_offs - start, edge_inside


@triton.jit
def kw_part({args}stats, row, publish, cols, k, K, chunk, lane, edge, LOG: tl.constexpr,
            EDGES: tl.constexpr):
    offs, c, inside, edge_offs, edge_c, edge_inside = kw_place(row, cols, k, chunk, lane, edge)
    x = {load}
    if EDGES:
        x_edge = {load_edge}
        m = tl.maximum(tl.max(x, axis=0), tl.max(x_edge, axis=0))
    else:
        x_edge = tl.full([32], -float("inf"), tl.float32)
        m = tl.max(x, axis=0)
    m_safe = tl.where(m == -float("inf"), 0.0, m)  # a chunk of -inf only: no -inf - -inf
    e = tl.exp(x - m_safe)
    total = tl.sum(e, axis=0)
    e_edge = x_edge
    if EDGES:
        e_edge = tl.exp(x_edge - m_safe)
        total += tl.sum(e_edge, axis=0)
    if publish:
        kw_publish(m, total, stats, row, k, K)
    if not LOG:
        x = e
        x_edge = e_edge
    return x, x_edge, m


@triton.jit(do_not_specialize=["rows", "groups"])  # the launch that sizes the grid compiles the same kernel
def kw_coop({args}out, stats, rows, cols, chunk, groups, K,
            KP: tl.constexpr, CHUNK: tl.constexpr, LOG: tl.constexpr, EDGES: tl.constexpr):
    pid = tl.program_id(0)
    k = pid % K  # this program's chunk of each of its rows
    lane = tl.arange(0, CHUNK)
    edge = tl.arange(0, 32)
    ks = tl.arange(0, KP)
    # Loads past the last row read the last row again (or row 0 when there are none), and are not published.
    first = pid // K
    x, x_edge, m = kw_part({args}stats, tl.maximum(tl.minimum(first, rows - 1), 0), first < rows, cols,
                           k, K, chunk, lane, edge, LOG, EDGES)
    for step in range(0, tl.cdiv(rows - first, groups)):
        row = first + step * groups
        # The next row's chunk, loaded and published before this row's wait, which it hides.
        following = row + groups
        x_next, edge_next, m_next = kw_part({args}stats, tl.minimum(following, rows - 1), following < rows,
                                            cols, k, K, chunk, lane, edge, LOG, EDGES)
        maxes, sums = kw_gather(stats, row, K, ks)
        maxes = tl.where(ks < K, maxes, -float("inf"))
        big = tl.max(maxes, axis=0)
        total = tl.sum(sums * tl.exp(maxes - big), axis=0)
        if LOG:
            shift = big + tl.log(total)
            y = x - shift
            y_edge = x_edge - shift
        else:
            scale = tl.exp(m - big) / total
            y = x * scale
            y_edge = x_edge * scale
        offs, c, inside, edge_offs, edge_c, edge_inside = kw_place(row, cols, k, chunk, lane, edge)
        tl.store(out + offs, kw_epilogue(y, {args}offs, c, inside).to(out.dtype.element_ty), mask=inside)
        if EDGES:
            tl.store(out + edge_offs, kw_epilogue(y_edge, {args}edge_offs, edge_c, edge_inside).to(out.dtype.element_ty),
                     mask=edge_inside)
        x = x_next
        x_edge = edge_next
        m = m_next
"""

# Group norm's per-channel weight and bias: a chunk within one channel (the channel's H * W a multiple of the
# chunk) loads one of each; otherwise each element finds its channel.
_GROUP_SCALE = """        if ONE_CHANNEL:
            channel = (row % GROUPS) * per_group + (k * chunk) // hw
{one}        else:
            channel = (row % GROUPS) * per_group + c // hw
{each}"""

# The forward's host helpers. kw_chunks: a row's equal chunks, a multiple of 16 elements, which Triton then
# knows (it specializes on it) and loads in vectors where rows are aligned too (an H200 probe of the softmax
# over a vocabulary, chunks of 4008 elements: 254 registers a thread, scalar loads; of 4016: 127).
# kw_resident: CTAs of the compiled kernel that the GPU holds at once; every NVIDIA GPU since Maxwell has 64K
# registers per SM, given to warps in blocks of 256 (asking the driver through Triton costs 0.8 ms a call).
_HOST = '''

def kw_chunks(length: int, block: int) -> tuple[int, int]:
    """A row of `length` elements in equal chunks of at most `block`, a multiple of 16: (chunk, how many)."""
    chunk = triton.cdiv(triton.cdiv(length, triton.cdiv(length, block)), 16) * 16
    return chunk, triton.cdiv(length, chunk)


def kw_resident(compiled, warps: int) -> int:
    """How many programs of `compiled` (with `warps` warps) the current GPU, where Triton launches, holds at
    once: per SM, the fewest that its registers, threads and shared memory allow, times the SMs."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    per_warp = math.ceil(compiled.n_regs * 32 / 256) * 256
    by_registers = 65536 // (per_warp * warps)
    by_threads = props.max_threads_per_multi_processor // (32 * warps)
    by_shared = props.shared_memory_per_multiprocessor // (compiled.metadata.shared + 1024)
    return min(by_registers, by_threads, by_shared, 32) * props.multi_processor_count
'''


def _long_rows(p: Norm) -> bool:
    return _row_width(p) // p.groups >= MIN_COLS  # a group norm's row is one group


class CooperativeNormTemplate:
    """Layer and RMS norm (instance norm is a layer norm over H and W), and group norm."""

    name = "triton.norm_cooperative"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        # The norms triton.norm and triton.group_norm write (the same prologue, affine step and epilogue), one
        # output, over long rows.
        p = analysis.pattern
        return (isinstance(p, Norm) and p.outputs == ("value",) and _long_rows(p)
                and any(t.matches(analysis) for t in (NormTemplate(), GroupNormTemplate())))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        # On an H200: chunks of 4096 on 4 warps within 128 registers a thread (4 programs per SM) reached 92 % of
        # the speed of light on instance norm, 78 % on group norm; 2048 on 2 warps 91 % and 72 %; 8192 on 8 warps
        # 91 % and 72 % (explore14-15, 18). Left to itself the compiler took 157 registers (3 programs per SM:
        # instance norm 76 % in the sixth session). maxnreg 0: its choice.
        return {"CHUNK": (4096, 2048, 8192), "num_warps": (4, 2, 8), "maxnreg": (128, 0)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Norm)
        group = p.kind == "group"
        # Layer and RMS norm: the weight and bias (over the row) start the epilogue. Group norm: per channel.
        epilogue = (p.epilogue if p.epilogue is not None else Value()) if group else norm_epilogue(p)
        kernel = _Kernel(analysis, [p.prologue, epilogue])
        channel = [(name, w) for name, w in (("gamma", p.weight), ("beta", p.bias)) if group and w is not None]
        scale = _GROUP_SCALE.format(one=_channel_lines(channel, scalar=True),
                                    each=_channel_lines(channel, scalar=False)) if channel else ""
        source = _source(kernel, p.prologue, epilogue, _KERNEL.format(
            args=kernel.args, affine="".join(f"{name}, " for name, _ in channel),
            group="hw, per_group, GROUPS: tl.constexpr, ONE_CHANNEL: tl.constexpr, " if channel else "",
            eps=repr(float(p.eps)), scale=scale))
        rows, cols = ("kw_rows", "kw_cols") if not group else (f"kw_rows * {p.groups}", f"kw_cols // {p.groups}")
        launch = [f"kw_{name} = self.{w.name}.contiguous()" for name, w in channel] + _buffers(rows, cols, params)
        if channel:
            launch += ["kw_hw = math.prod(kw_x.shape[2:])"]
        # The channel's size, channels per group, the group count, and whether every chunk lies in one channel.
        constants = (f"kw_hw, kw_x.shape[1] // {p.groups}, GROUPS={p.groups}, ONE_CHANNEL=kw_hw % kw_chunk == 0, "
                     if channel else "") + f"RMS={p.kind == 'rms'}, EVEN=kw_chunk == kw_block and kw_len % kw_block == 0, "
        launch += _grid_launch("{tensors}" + "".join(f"kw_{name}, " for name, _ in channel), constants, params)
        what = f"{p.kind} norm over the last {p.dims} dim(s)" + (f" in {p.groups} groups" if group else "")
        return kernel.candidate(source, launch, _doc(self.name, f"{what}, eps={p.eps}", params), p.dims)


class CooperativeSoftmaxTemplate:
    """Softmax and log-softmax over the last dim."""

    name = "triton.softmax_cooperative"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        # What triton.row_reduce writes for these kinds (the same prologue and epilogue), over long rows.
        p = analysis.pattern
        return (isinstance(p, RowReduce) and p.kind in NORMALIZATIONS and _row_width(p) >= MIN_COLS
                and RowReduceTemplate().matches(analysis))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        # On an H200 (explore14-15, 18, two runs each): chunks of 4096 on 4 warps within 128 registers, 89 % of
        # the speed of light on softmax and 86 % on log-softmax; 2048 on 4 warps, registers the compiler's
        # (56-64), 84 % and 91 %; 4096 on 8 warps 89 % and 79 %.
        return {"CHUNK": (4096, 2048, 8192), "num_warps": (4, 8, 2), "maxnreg": (128, 0)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, RowReduce)
        epilogue = p.epilogue if p.epilogue is not None else Value()
        kernel = _Kernel(analysis, [p.prologue, epilogue])
        loads = {"load": ("offs", "c", "inside"), "load_edge": ("edge_offs", "edge_c", "edge_inside")}
        if isinstance(p.prologue, Input) and p.prologue.layout == "full":
            lines = {key: f'tl.load({kernel.names[p.prologue]} + {offs}, mask={mask}, other=-float("inf")).to(tl.float32)'
                     for key, (offs, _, mask) in loads.items()}
        else:
            lines = {key: f'tl.where({mask}, kw_prologue({kernel.args}{offs}, {c}, {mask}), -float("inf"))'
                     for key, (offs, c, mask) in loads.items()}
        source = _source(kernel, p.prologue, epilogue, _SOFTMAX_KERNEL.format(args=kernel.args, **lines),
                         before=ALIGNED_ROW + "\n\n")
        launch = _buffers("kw_rows", "kw_cols", params) + _grid_launch(
            "{tensors}", f"LOG={p.kind == 'log_softmax'}, EDGES=kw_len % 16 != 0, ", params)
        return kernel.candidate(source, launch, _doc(self.name, f"{p.kind} over the last dim", params))


def _source(kernel: _Kernel, prologue: Expr, epilogue: Expr, body: str, before: str = "") -> str:
    """The candidate's kernels and host helpers: the prologue and epilogue helpers, `before`, the publication
    helpers (_PUBLISH), the template's kernel `body`, then _HOST."""
    return (kernel.helper("kw_prologue", prologue) + "\n\n" + kernel.helper("kw_epilogue", epilogue, with_value=True)
            + "\n\n" + before + _PUBLISH + "\n\n" + body + _HOST)


def _buffers(rows: str, cols: str, params: dict[str, Any]) -> list[str]:
    """The forward's lines that size the chunks and allocate the output and the statistics' slots."""
    return [
        f"kw_n, kw_len = {rows}, {cols}",
        # One program per row under the interpreter (see the module's doc); K programs per row on a GPU.
        f"kw_block = {int(params['CHUNK'])} if kw_x.is_cuda else triton.next_power_of_2(kw_len)",
        "kw_chunk, kw_k = kw_chunks(kw_len, kw_block)",
        "kw_out = torch.empty_like(kw_x)",
        "kw_stats = torch.zeros(kw_n * kw_k, dtype=torch.int64, device=kw_x.device)",  # unwritten slots are 0
    ]


def _grid_launch(tensors: str, constants: str, params: dict[str, Any]) -> list[str]:
    """The forward's lines that compile kw_coop, size its grid to what the GPU holds at once, launch it
    cooperatively and return the output. `tensors` and `constants` are the kernel's own arguments, before
    and after the shared ones."""
    warps, maxnreg = int(params["num_warps"]), int(params["maxnreg"])
    args = tensors + "kw_out, kw_stats, "
    tail = (f"kw_k, {constants}KP=triton.next_power_of_2(kw_k), CHUNK=kw_block, num_warps={warps}"
            + (f", maxnreg={maxnreg}" if maxnreg else ""))
    return [
        # A launch without rows compiles the kernel, whose registers size the grid.
        f"kw_compiled = kw_coop[(1,)]({args}0, kw_len, kw_chunk, 1, {tail})",
        f"kw_fit = kw_resident(kw_compiled, {warps}) if kw_x.is_cuda else kw_n * kw_k",
        "kw_groups = min(kw_fit // kw_k, kw_n)",
        "if kw_groups < 1:",
        "    raise RuntimeError(f'a row of {kw_len} elements needs {kw_k} programs at once; this GPU holds {kw_fit}')",
        f"kw_coop[(kw_groups * kw_k,)]({args}kw_n, kw_len, kw_chunk, kw_groups, {tail}, launch_cooperative_grid=kw_x.is_cuda)",
        "return kw_out"]


def _channel_lines(channel: list[tuple[str, Any]], scalar: bool) -> str:
    """y times the channel's weight plus its bias: one load each, or one per element."""
    load = (lambda name: f"tl.load({name} + channel).to(tl.float32)") if scalar else (
        lambda name: f"tl.load({name} + channel, mask=inside, other=0.0).to(tl.float32)")
    ops = {"gamma": "y = y * {}", "beta": "y = y + {}"}
    return "".join(f"            {ops[name].format(load(name))}\n" for name, _ in channel)


TEMPLATES = [CooperativeNormTemplate(), CooperativeSoftmaxTemplate()]
