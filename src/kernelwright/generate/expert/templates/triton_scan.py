"""Triton templates for scans (cumulative sums and products) and cross-entropy.

triton.scan: each program scans whole rows along the last dim. A program holds a
tile of BLOCK elements: one row's BLOCK_C = min(BLOCK, next_power_of_2(cols))
columns for ROWS = BLOCK // BLOCK_C rows at once, so short rows (a NeRF ray's
192 samples) still fill a program. A row wider than its tile is scanned tile by
tile (from the last tile for a reverse scan), the total of the tiles so far
carried into the next: one read and one write of the row. Within a tile,
tl.cumsum / tl.cumprod (associative scans) do the work. An exclusive scan reads
the prologue one column behind (ahead, when reversed), with the identity at the
row's end, so that it is an inclusive scan of the shifted row. Arithmetic is
fp32 whatever the storage dtype; the epilogue (`kw_epilogue`, as in triton.py)
finishes each element.

triton.cross_entropy: one program per row computes logsumexp(row) - row[target]
in one read of the row: a running max and sum of exponentials, either per tile
(strategy "tile": one exp per element, a max and a sum across the tile per step)
or per lane (strategy "lane": two exps per element, no cross-lane work until the
end). A row whose target is ignore_index writes 0. For reduction "mean" or
"sum" the per-row losses go to an fp32 buffer that a second one-program kernel
sums in a fixed order (deterministic, unlike atomics), dividing by the number of
counted rows for "mean" (0 / 0 = NaN when none counts, as PyTorch).

Parameters: BLOCK (elements per tile, a power of two), num_warps; a reverse sum
also reverse_by ("subtract": the tile's total minus its forward sum, or "scan":
a reverse tl.cumsum); cross-entropy also strategy.
"""

from __future__ import annotations

from typing import Any

from kernelwright.generate.expert.patterns import LOSS_REDUCTIONS, SCANS, Analysis, CrossEntropy, Scan, Value
from kernelwright.generate.expert.templates.triton import _DTYPES, _doc, _Kernel, _valid

_IDENTITY = {"sum": "0.0", "prod": "1.0"}
_COMBINE = {"sum": "+", "prod": "*"}
# tl.cumsum / tl.cumprod: associative scans over tl's own combine functions, which Triton's interpreter
# also recognizes (and runs as numpy's, where a combine function of ours would run element by element).
_SCAN_FN = {"sum": "tl.cumsum", "prod": "tl.cumprod"}

_SCAN = """@triton.jit
def kw_scan({args}out, rows, cols, ROWS: tl.constexpr, BLOCK: tl.constexpr, ONE_TILE: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]
    base = row * cols
    lane = tl.arange(0, BLOCK)[None, :] + tl.zeros([ROWS, 1], dtype=tl.int32)
    carry = tl.full([ROWS, 1], {identity}, tl.float32)
    if ONE_TILE:  # the row fits one tile: no loop and no carry
        c = lane
{one_tile}    else:
        tiles = tl.cdiv(cols, BLOCK)
        for i in range(0, tiles):
            c = {start} * BLOCK + lane
{each_tile}"""
# One tile's work, given its columns c: the whole row's when it fits one tile, else each step's (followed by
# the carry into the next). On an H200 the suite's 1000-wide reverse cumsum ran at 40-54 % of the speed of
# light inside a loop of one step, at 91 % without it.
_TILE = """mask = (row < rows) & (c < cols)
p = c{shift}
p_mask = mask & (p >= 0) & (p < cols)
v = tl.where(p_mask, kw_prologue({args}base + p, p, p_mask), {identity})
{scan}y = kw_epilogue(carry {op} scanned, {args}base + c, c, mask)
tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)
"""
# Within a tile: the scan, and the carry into the next tile (the tile's total is its scan's last element;
# the first, scanning in reverse).
_WITHIN = {
    "scan": ("scanned = {fn}(v, axis=1, reverse={reverse})\n",
             "carry = carry {op} tl.sum(tl.where(lane == {last}, scanned, 0.0), axis=1, keep_dims=True)\n"),
    # A reverse sum as the tile's total minus the forward sum before each element: on an H200 the suite's
    # reverse cumsum ran at 33-51 % of the speed of light with Triton 3.6's reverse tl.cumsum, at 91 % this
    # way. It rounds differently from a sequential reverse sum, by about an ulp of the tile's running sums.
    "subtract": ("total = tl.sum(v, axis=1, keep_dims=True)\nscanned = total - tl.cumsum(v, axis=1) + v\n",
                 "carry = carry + total\n"),
}


def _tile_space(cols: int) -> dict[str, tuple[Any, ...]]:
    """Bigger tiles for wide rows (fewer steps of the carried loop), smaller ones for short rows."""
    if cols > 4096:
        return {"BLOCK": (4096, 2048, 8192, 1024), "num_warps": (8, 4, 16)}
    return {"BLOCK": (1024, 2048, 4096, 512), "num_warps": (4, 8, 2)}


class ScanTemplate:
    name = "triton.scan"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return isinstance(p, Scan) and p.kind in SCANS and _valid(analysis, p.prologue, [p.epilogue])

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Scan)
        # A reverse sum may subtract (see _WITHIN); a product may not (a zero would divide).
        order = {"reverse_by": ("subtract", "scan")} if p.reverse and p.kind == "sum" else {}
        return {**order, **_tile_space(p.shape[-1] if p.shape else 1)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Scan)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue])
        shift = "" if not p.exclusive else " + 1" if p.reverse else " - 1"
        scan, carry = (part.format(fn=_SCAN_FN[p.kind], reverse=p.reverse, op=_COMBINE[p.kind],
                                   last="0" if p.reverse else "BLOCK - 1")
                       for part in _WITHIN[params.get("reverse_by", "scan")])
        tile = _TILE.format(args=kernel.args, identity=_IDENTITY[p.kind], op=_COMBINE[p.kind], shift=shift, scan=scan)
        source = (kernel.helper("kw_prologue", p.prologue) + "\n\n"
                  + kernel.helper("kw_epilogue", p.epilogue if p.epilogue is not None else Value(), with_value=True)
                  + "\n\n" + _SCAN.format(args=kernel.args, identity=_IDENTITY[p.kind],
                                          start="(tiles - 1 - i)" if p.reverse else "i",
                                          one_tile=_indent(tile, 8), each_tile=_indent(tile + carry, 12)))
        block, warps = int(params["BLOCK"]), int(params["num_warps"])
        launch = ["kw_out = torch.empty_like(kw_x)",
                  f"kw_block = min(triton.next_power_of_2(kw_cols), {block})",
                  f"kw_per = {block} // kw_block",  # rows per program
                  ("kw_scan[(triton.cdiv(kw_rows, kw_per),)]({tensors}kw_out, kw_rows, kw_cols, ROWS=kw_per, "
                   f"BLOCK=kw_block, ONE_TILE=kw_cols <= kw_block, num_warps={warps})"),
                  "return kw_out"]
        return kernel.candidate(source, launch, _doc(self.name, f"{p.what} over the last dim", params))


# -- cross-entropy ------------------------------------------------------------------------------------

# Running max m and sum s of exp(x - m) over the row, as (before the loop, in it, after it). `safe`
# keeps -inf - -inf (nothing but -inf seen yet) from making NaN.
_ONLINE = {
    "tile": ("""m = -float("inf")
s = 0.0
""", """m_new = tl.maximum(m, tl.max(x, axis=0))
safe = tl.where(m_new == -float("inf"), 0.0, m_new)
s = s * tl.exp(m - safe) + tl.sum(tl.exp(x - safe), axis=0)
m = m_new
""", ""),
    "lane": ("""m_lane = tl.full([BLOCK], -float("inf"), tl.float32)
s_lane = tl.zeros([BLOCK], dtype=tl.float32)
""", """m_new = tl.maximum(m_lane, x)
safe = tl.where(m_new == -float("inf"), 0.0, m_new)
s_lane = s_lane * tl.exp(m_lane - safe) + tl.exp(x - safe)
m_lane = m_new
""", """m = tl.max(m_lane, axis=0)
safe = tl.where(m == -float("inf"), 0.0, m)
s = tl.sum(s_lane * tl.exp(m_lane - safe), axis=0)
"""),
}

_CE_ROWS = """@triton.jit
def kw_ce_rows(logits, targets, loss, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
{init}    for start in range(0, cols, BLOCK):
        c = start + tl.arange(0, BLOCK)
        x = tl.load(logits + base + c, mask=c < cols, other=-float("inf")).to(tl.float32)
{step}{end}    target = tl.load(targets + row)
    counted = target != {ignore}
    # A target outside [0, cols) is an error in PyTorch; here it only must not read outside the row.
    inside = counted & (target >= 0) & (target < cols)
    picked = tl.load(logits + base + target, mask=inside, other=0.0).to(tl.float32)
    value = tl.where(counted, tl.log(s) + m - picked, 0.0)
    tl.store(loss + row, value.to(loss.dtype.element_ty))
"""

_CE_TOTAL = """@triton.jit
def kw_ce_total(loss, targets, out, rows, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    counted = tl.zeros([BLOCK], dtype=tl.int32)
    for start in range(0, rows, BLOCK):
        r = start + tl.arange(0, BLOCK)
        acc += tl.load(loss + r, mask=r < rows, other=0.0)
        counted += (tl.load(targets + r, mask=r < rows, other={ignore}) != {ignore}).to(tl.int32)
    total = tl.sum(acc, axis=0){mean}
    tl.store(out, total.to(out.dtype.element_ty))
"""


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


class CrossEntropyTemplate:
    name = "triton.cross_entropy"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, CrossEntropy) and p.dtype in _DTYPES and p.reduction in LOSS_REDUCTIONS
                and all(0 <= leaf.index < len(analysis.forward_args) for leaf in (p.logits, p.targets)))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, CrossEntropy)
        return {"strategy": ("tile", "lane"), **_tile_space(p.shape[-1] if p.shape else 1)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, CrossEntropy)
        kernel = _Kernel(analysis, [p.logits, p.targets])  # kw_x is the logits: their rows and columns
        init, step, end = _ONLINE[params["strategy"]]
        source = _CE_ROWS.format(init=_indent(init, 4), step=_indent(step, 8), end=_indent(end, 4),
                                 ignore=int(p.ignore_index))
        block, warps = int(params["BLOCK"]), int(params["num_warps"])
        # "none" writes the losses as the output; "mean" and "sum" into an fp32 buffer that kw_ce_total sums.
        loss = "kw_out" if p.reduction == "none" else "kw_loss"
        rows = (f"kw_ce_rows[(kw_rows,)]({{tensors}}{loss}, kw_cols, BLOCK=min(triton.next_power_of_2(kw_cols), "
                f"{block}), num_warps={warps})")
        if p.reduction == "none":
            launch = ["kw_out = torch.empty(kw_rows, dtype=kw_x.dtype, device=kw_x.device)", rows]
        else:
            mean = " / tl.sum(counted, axis=0).to(tl.float32)" if p.reduction == "mean" else ""
            source += "\n\n" + _CE_TOTAL.format(ignore=int(p.ignore_index), mean=mean)
            targets = analysis.forward_args[p.targets.index]
            launch = ["kw_loss = torch.empty(kw_rows, dtype=torch.float32, device=kw_x.device)", rows,
                      "kw_out = torch.empty((), dtype=kw_x.dtype, device=kw_x.device)",
                      f"kw_ce_total[(1,)](kw_loss, {targets}, kw_out, kw_rows, BLOCK=1024, num_warps=4)"]
        return kernel.candidate(source, [*launch, "return kw_out"],
                                _doc(self.name, f"cross-entropy ({p.reduction}, ignore_index={p.ignore_index})",
                                     params))


TEMPLATES = [ScanTemplate(), CrossEntropyTemplate()]
