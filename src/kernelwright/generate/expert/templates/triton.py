"""Triton templates: pointwise chains, row reductions and softmax, layer and RMS norms.

Every kernel sees its tensors as rows (all dims but the last) by columns (the
last dim). Expressions become `@triton.jit` helpers that the kernels call (and
Triton inlines): `kw_prologue(leaves..., offs, c, mask)` gives one element of
what is reduced or normalized (offs its flat index, c its column), and
`kw_epilogue(value, leaves..., offs, c, mask)` finishes one output element. All
arithmetic is fp32, whatever the storage dtype: loads are widened, stores
narrowed to the output's dtype.

Row kernels run one program per row. Their parameters:
  strategy     "single_pass": the whole row in registers (one read; best while
               the row fits), or "looped": BLOCK columns at a time, with an
               online max and sum for softmax-like kinds (two reads, any width;
               the second from the row's end, where L2 still holds the first's
               last tiles)
  BLOCK        the looped strategy's tile (a power of two)
  num_warps    threads per program (32 each)
Pointwise kernels: BLOCK elements per program, num_warps.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

from kernelwright.generate.expert.patterns import (
    NORMALIZATIONS, REDUCTIONS, Analysis, Call, Const, Expr, Input, Norm, Pointwise, RowReduce, Value, Weight,
    leaves,
)
from kernelwright.generate.expert.templates import named_leaves
from kernelwright.generate.expert.templates._emit import Emitter

Leaf = Input | Weight

# op -> Triton over fp32 temporaries.
_TABLE = {
    "neg": "-{0}", "abs": "tl.abs({0})", "exp": "tl.exp({0})", "log": "tl.log({0})",
    "sqrt": "tl.sqrt_rn({0})", "rsqrt": "1.0 / tl.sqrt_rn({0})", "reciprocal": "1.0 / {0}", "square": "{0} * {0}",
    "sigmoid": "tl.sigmoid({0})", "relu": "tl.maximum({0}, 0.0)", "silu": "{0} * tl.sigmoid({0})",
    # tanh(x) = 2 sigmoid(2x) - 1: no tanh in tl, and the absolute error (an ulp of 1) is what the tolerance reads.
    "tanh": "2.0 * tl.sigmoid(2.0 * {0}) - 1.0",
    "gelu": "0.5 * {0} * (1.0 + tl.erf({0} * 0.7071067811865476))",
    "gelu_tanh": "{0} * tl.sigmoid(1.5957691216057308 * ({0} + 0.044715 * {0} * {0} * {0}))",  # 0.5(1+tanh z) = sigmoid(2z)
    "erf": "tl.erf({0})", "sin": "tl.sin({0})", "cos": "tl.cos({0})",
    # PyTorch's softplus (beta 1, threshold 20).
    "softplus": "tl.where({0} > 20.0, {0}, tl.log(1.0 + tl.exp(tl.minimum({0}, 20.0))))",
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
    "maximum": "tl.maximum({0}, {1})", "minimum": "tl.minimum({0}, {1})",
    "leaky_relu": "tl.where({0} > 0.0, {0}, {0} * {1})",
}
# pow only by the constant exponents torch itself turns into multiplications or a root.
_POWERS = {2.0: "{0} * {0}", 3.0: "{0} * {0} * {0}", 0.5: "tl.sqrt_rn({0})", 1.0: "{0}", -1.0: "1.0 / {0}"}
_DTYPES = ("float32", "bfloat16", "float16")


def _literal(value: float) -> str:
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    return f"({value!r})" if value < 0 else repr(float(value))


def _special(call: Call, args: list[str]) -> str | None:
    if call.op == "pow":
        return _POWERS[float(call.args[1].value)].format(args[0])  # _supported checked the exponent
    if call.op == "clamp":  # an infinite bound is no bound
        code = args[0]
        if not (isinstance(call.args[1], Const) and call.args[1].value == -math.inf):
            code = f"tl.maximum({code}, {args[1]})"
        if not (isinstance(call.args[2], Const) and call.args[2].value == math.inf):
            code = f"tl.minimum({code}, {args[2]})"
        return code
    return None


def _supported(expr: Expr | None, value_ok: bool = False) -> bool:
    if expr is None or isinstance(expr, (Const, Input, Weight)):
        return True
    if isinstance(expr, Value):
        return value_ok
    if expr.op == "pow":
        ok = isinstance(expr.args[1], Const) and float(expr.args[1].value) in _POWERS
    else:
        ok = expr.op in _TABLE or expr.op == "clamp"
    return ok and all(_supported(a, value_ok) for a in expr.args)


def _substitute(expr: Expr | None, value: Expr) -> Expr:
    """`expr` with Value() replaced by `value` (no epilogue: `value` itself)."""
    if expr is None or isinstance(expr, Value):
        return value
    if isinstance(expr, Call):
        return Call(expr.op, tuple(_substitute(a, value) for a in expr.args))
    return expr


class _Kernel:
    """A pattern's tensor leaves (their kernel parameter names and loads) and the jit helpers over them."""

    def __init__(self, analysis: Analysis, exprs: list[Expr | None]) -> None:
        self.analysis = analysis
        self.names = named_leaves(exprs)
        self.leaves: list[Leaf] = list(self.names)
        self.args = "".join(f"{self.names[leaf]}, " for leaf in self.leaves)

    def load(self, leaf: Leaf) -> str:
        name = self.names[leaf]
        if leaf.layout == "scalar":
            return f"tl.load({name}).to(tl.float32)"
        if leaf.layout == "broadcast":  # the kernel has loaded it (_broadcast, _render_rows): a value, fp32
            return name
        index = "offs" if leaf.layout == "full" else "c"
        return f"tl.load({name} + {index}, mask=mask, other=0.0).to(tl.float32)"

    def helper(self, name: str, expr: Expr, with_value: bool = False) -> str:
        emitter = Emitter(_TABLE, _literal, self.load, value="value", special=_special)
        lines, result = emitter.emit(expr, "t")
        body = textwrap.indent("\n".join([*lines, f"return {result}"]), "    ")
        value = "value, " if with_value else ""
        return f"@triton.jit\ndef {name}({value}{self.args}offs, c, mask):\n{body}\n"

    def main_leaf(self) -> Leaf:
        """The tensor that sizes the launch: the first full-layout input (else weight)."""
        full = [leaf for leaf in self.leaves if leaf.layout == "full"]
        return next((leaf for leaf in full if isinstance(leaf, Input)), full[0])

    def broadcasts(self) -> list[Leaf]:
        return [leaf for leaf in self.leaves if leaf.layout == "broadcast"]

    def candidate(self, kernels: str, launch: list[str], doc: str, dims: int = 1) -> str:
        """The whole candidate file: `launch` (forward's lines after the tensors are bound) may use
        `kw_x` (the main tensor), `kw_cols` (the product of the last `dims` dims), `kw_rows`, `{tensors}`
        (every leaf, in kernel order) and `{broadcast}` (sizes and strides for _BROADCAST, if any)."""
        a = self.analysis
        init = textwrap.dedent(a.init_source).strip()  # the analysis made super() plain
        body = textwrap.indent("\n".join(self.forward_lines(launch, dims)), " " * 8)
        return (f'"""{doc}"""\n{a.imports.strip()}\nimport math\n\nimport torch\nimport torch.nn as nn\nimport triton\n'
                f"import triton.language as tl\n\n\n{kernels}\n\nclass ModelNew(nn.Module):\n"
                f"{textwrap.indent(init, ' ' * 4)}\n\n"
                f"    def forward(self, {', '.join(a.forward_args)}):\n{body}\n")

    def forward_lines(self, launch: list[str], dims: int = 1) -> list[str]:
        """The forward's lines: the tensors bound, then `launch` (see `candidate`)."""
        a = self.analysis
        lines, values = [], {}
        for leaf in self.leaves:
            base = f"{a.forward_args[leaf.index]}" if isinstance(leaf, Input) else f"self.{leaf.name}"
            if leaf.layout == "broadcast":  # a strided view, bound below once kw_x gives the shape
                values[leaf] = f"kw_{self.names[leaf]}"
            elif isinstance(leaf, Input):
                lines.append(f"{base} = {base}.contiguous()")
                values[leaf] = base
            else:
                lines.append(f"kw_{self.names[leaf]} = {base}.contiguous()")
                values[leaf] = f"kw_{self.names[leaf]}"
        lines.append(f"kw_x = {values[self.main_leaf()]}")
        lines.append(f"kw_cols = math.prod(kw_x.shape[-{dims}:]) if kw_x.dim() else 1")
        lines.append("kw_rows = kw_x.numel() // max(kw_cols, 1)")
        broadcast = ""
        if self.broadcasts():
            # Sizes and strides padded to 4 dims at the front; a broadcast dim has stride 0.
            lines.append("kw_pad = 4 - kw_x.dim()")
            lines.append("kw_sizes = (1,) * kw_pad + tuple(kw_x.shape)")
            for leaf in self.broadcasts():
                base = f"{a.forward_args[leaf.index]}" if isinstance(leaf, Input) else f"self.{leaf.name}"
                view = base + "".join(f".unsqueeze({d})" for d in leaf.unsqueeze)
                lines.append(f"{values[leaf]} = {view}.expand(kw_x.shape)")
            broadcast = "kw_sizes[1], kw_sizes[2], kw_sizes[3], " + "".join(
                f"*((0,) * kw_pad + {values[leaf]}.stride()), " for leaf in self.broadcasts())
        tensors = "".join(f"{values[leaf]}, " for leaf in self.leaves)
        return lines + [line.replace("{tensors}", tensors).replace("{broadcast}", broadcast) for line in launch]


def _valid(analysis: Analysis, main: Expr, others: list[Expr | None], broadcast_ok: bool = False) -> bool:
    """Ops the helpers can write, forward arguments that exist, and a full-layout leaf to size the launch;
    broadcast leaves only where the kernel computes their strided offsets (pointwise)."""
    def args_ok(e: Expr | None) -> bool:
        return e is None or all(
            (not isinstance(leaf, Input) or 0 <= leaf.index < len(analysis.forward_args))
            and (broadcast_ok or leaf.layout != "broadcast") for leaf in leaves(e))

    return (analysis.pattern.dtype in _DTYPES and any(leaf.layout == "full" for leaf in leaves(main))
            and _supported(main) and all(_supported(e, value_ok=True) for e in others)
            and all(args_ok(e) for e in [main, *others]))


def _doc(name: str, what: str, params: dict[str, Any]) -> str:
    return f"{name}: {what}; " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."


# -- pointwise --------------------------------------------------------------------------------------

# WIDE: 64-bit indices, only for tensors of 2^31 elements or more (64-bit division and remainder, which
# the broadcast offsets and the column use, cost several times the 32-bit ones).
_POINTWISE = """@triton.jit
def kw_pointwise({args}out, n, cols, {broadcast_params}BLOCK: tl.constexpr, WIDE: tl.constexpr):
    if WIDE:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = {column}
{broadcast}    y = kw_prologue({args}offs, c, mask)
    tl.store(out + offs, y.to(out.dtype.element_ty), mask=mask)
"""


def _broadcast(kernel: _Kernel) -> dict[str, str]:
    """Kernel parameters and code that load each broadcast leaf's element: the flat index split into 4
    coordinates (sizes d1..d3; d0 is implied), dotted with the leaf's strides of `expand` (0 where it
    broadcasts)."""
    names = [kernel.names[leaf] for leaf in kernel.broadcasts()]
    if not names:
        return {"broadcast_params": "", "broadcast": ""}
    # The sizes are compile-time constants (a kernel per shape), so each division and remainder by them is a
    # multiply and a shift, as in torch.compile's kernels, not a 32-bit division's dozens of instructions.
    params = "d1: tl.constexpr, d2: tl.constexpr, d3: tl.constexpr, " + "".join(
        f"{n}_s0, {n}_s1, {n}_s2, {n}_s3, " for n in names)
    code = ["i3 = offs % d3", "rest = offs // d3", "i2 = rest % d2", "rest = rest // d2", "i1 = rest % d1",
            "i0 = rest // d1"]
    code += [f"{n} = tl.load({n} + i0 * {n}_s0 + i1 * {n}_s1 + i2 * {n}_s2 + i3 * {n}_s3, mask=mask, other=0.0)"
             ".to(tl.float32)" for n in names]
    return {"broadcast_params": params, "broadcast": "".join(f"    {line}\n" for line in code)}


# strategy="rows": one program per (row, tile of the row), where a row is the trailing dims over which
# every broadcast leaf is constant or contiguous (kw_split, in the candidate, finds them at run time).
# Each leaf then sits at one offset per row plus the column times its step, 0 or 1 (a compile-time
# constant): no division per element, and a leaf constant along the row is one scalar load per program
# (a per-channel scale over an image plane), not a load per element.
_POINTWISE_ROWS = """@triton.jit
def kw_pointwise({args}out, inner, cols, d1, d2, {leaf_params}BLOCK: tl.constexpr):
    r = tl.program_id(0)
    col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = col < inner
    offs = r.to(tl.int64) * inner + col
    c = {column}
    i2 = r % d2
    rest = r // d2
    i1 = rest % d1
    i0 = rest // d1
{moves}    y = kw_prologue({args}offs, c, mask)
    tl.store(out + offs, y.to(out.dtype.element_ty), mask=mask)
"""
_SPLIT = '''

def kw_split(shape: tuple, view_strides: list) -> tuple:
    """(outer sizes padded to 3, inner size, per view (3 outer strides, column step 0 or 1)): the inner block
    is the most trailing dims over which every view is constant (stride 0) or laid out like the output."""
    sizes = (1,) * (4 - len(shape)) + tuple(shape)
    strides = [(0,) * (4 - len(shape)) + tuple(s) for s in view_strides]
    dense = [math.prod(sizes[d + 1:]) for d in range(4)]
    for k in (3, 2, 1):
        dims = [d for d in range(4 - k, 4) if sizes[d] != 1]
        steps = [0 if all(s[d] == 0 for d in dims) else 1 if all(s[d] == dense[d] for d in dims) else None
                 for s in strides]
        if None not in steps or k == 1:
            outer = (1,) * (k - 1) + sizes[:4 - k]
            return outer, math.prod(sizes[4 - k:]), [((0,) * (k - 1) + s[:4 - k], step) for s, step in zip(strides, steps)]
'''


class PointwiseTemplate:
    name = "triton.pointwise"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return isinstance(analysis.pattern, Pointwise) and _valid(analysis, analysis.pattern.expr, [], broadcast_ok=True)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        broadcast = any(leaf.layout == "broadcast" for leaf in leaves(analysis.pattern.expr))
        # Flat first: on an H200 it ran the suite's three broadcast tasks at 82-100 % of the speed of light,
        # rows (loading every leaf per element, as it then did) at 74-90 %; rows with its scalar loads won
        # batch norm, a per-channel leaf over large planes, at 94 %.
        strategy = {"strategy": ("flat", "rows")} if broadcast else {}
        return {**strategy, "BLOCK": (1024, 512, 2048, 4096), "num_warps": (4, 8, 2)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        pattern = analysis.pattern
        assert isinstance(pattern, Pointwise)
        kernel = _Kernel(analysis, [pattern.expr])
        # The column (offs % cols) costs a division per element: only row-layout leaves need it.
        by_row = any(leaf.layout == "row" for leaf in kernel.leaves)
        block, warps = int(params["BLOCK"]), int(params["num_warps"])
        if params.get("strategy", "flat") == "rows":
            return self._render_rows(kernel, pattern, params, by_row)
        source = kernel.helper("kw_prologue", pattern.expr) + "\n\n" + _POINTWISE.format(
            args=kernel.args, column="offs % cols" if by_row else "offs", **_broadcast(kernel))
        launch = ["kw_out = torch.empty_like(kw_x)",
                  f"kw_pointwise[(triton.cdiv(kw_x.numel(), {block}),)]({{tensors}}kw_out, kw_x.numel(), kw_cols, {{broadcast}}"
                  f"BLOCK={block}, WIDE=kw_x.numel() >= 2**31, num_warps={warps})",
                  "return kw_out"]
        return kernel.candidate(source, launch, _doc(self.name, "elementwise", params))

    def _render_rows(self, kernel: _Kernel, pattern: Pointwise, params: dict[str, Any], by_row: bool) -> str:
        names = [kernel.names[leaf] for leaf in kernel.broadcasts()]
        leaf_params = "".join(f"{n}_s0, {n}_s1, {n}_s2, {n}_step: tl.constexpr, " for n in names)
        moves = "".join(
            f"    {n} = {n} + (i0 * {n}_s0 + i1 * {n}_s1 + i2 * {n}_s2).to(tl.int64)\n"
            f"    if {n}_step == 0:\n        {n} = tl.load({n}).to(tl.float32)\n"
            f"    else:\n        {n} = tl.load({n} + col, mask=mask, other=0.0).to(tl.float32)\n" for n in names)
        source = kernel.helper("kw_prologue", pattern.expr) + "\n\n" + _POINTWISE_ROWS.format(
            args=kernel.args, column="col % cols" if by_row else "col", leaf_params=leaf_params, moves=moves) + _SPLIT
        views = ", ".join(f"kw_{n}.stride()" for n in names)
        block, warps = int(params["BLOCK"]), int(params["num_warps"])
        launch = ["kw_out = torch.empty_like(kw_x)",
                  f"kw_outer, kw_inner, kw_leaves = kw_split(tuple(kw_x.shape), [{views}])",
                  "kw_strides = [x for s, step in kw_leaves for x in (*s, step)]",
                  f"kw_pointwise[(math.prod(kw_outer), triton.cdiv(kw_inner, {block}))]({{tensors}}kw_out, kw_inner, "
                  f"kw_cols, kw_outer[1], kw_outer[2], *kw_strides, BLOCK={block}, num_warps={warps})",
                  "return kw_out"]
        return kernel.candidate(source, launch, _doc(self.name, "elementwise, by rows", params))


# -- row kernels ------------------------------------------------------------------------------------
# Bodies run inside `def kw_row(...)` after `row` and `base` are set. {P} is the prologue's call for the
# current columns (c, mask); {E} the epilogue's call prefix, completed with (value, leaves..., offs, c, mask).

_ROW = """@triton.jit
def kw_row({args}out, {extra}cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * cols
{body}
"""
_COLUMNS = "c = {start}tl.arange(0, BLOCK)\nmask = c < cols\n"
_LOOP = "for start in range(0, cols, BLOCK):\n"


def _in_loop(text: str) -> str:
    """The statements as the body of a loop over the row's tiles."""
    return _LOOP + textwrap.indent(_COLUMNS.format(start="start + ") + text, "    ")


def _in_loop_reversed(text: str) -> str:
    """The statements as the body of a loop over the row's tiles from its last: a second pass over a row
    too wide for registers reads first what the first pass read last, which L2 is likeliest to still hold."""
    last = "last = (cols - 1) // BLOCK * BLOCK\n"
    return last + "for back in range(0, cols, BLOCK):\n" + textwrap.indent(
        "start = last - back\n" + _COLUMNS.format(start="start + ") + text, "    ")


def _single(text: str) -> str:
    return _COLUMNS.format(start="") + text


# One value per row. Looped and single-pass are the same code: a single pass is one tile.
_ACCUMULATE = {
    "sum": ("acc = tl.zeros([BLOCK], dtype=tl.float32)\n", "acc += tl.where(mask, {P}, 0.0)\n",
            "result = tl.sum(acc, axis=0)\n"),
    "mean": ("acc = tl.zeros([BLOCK], dtype=tl.float32)\n", "acc += tl.where(mask, {P}, 0.0)\n",
             "result = tl.sum(acc, axis=0) / cols\n"),
    "max": ('acc = tl.full([BLOCK], -float("inf"), tl.float32)\n',
            'acc = tl.maximum(acc, tl.where(mask, {P}, -float("inf")))\n', "result = tl.max(acc, axis=0)\n"),
    "min": ('acc = tl.full([BLOCK], float("inf"), tl.float32)\n',
            'acc = tl.minimum(acc, tl.where(mask, {P}, float("inf")))\n', "result = tl.min(acc, axis=0)\n"),
    # Per lane, the first index of its extreme (strict comparison); across lanes, the least index holding
    # the row's extreme: torch's first occurrence.
    "argmax": ('best = tl.full([BLOCK], -float("inf"), tl.float32)\nindex = tl.zeros([BLOCK], dtype=tl.int32)\n',
               'v = tl.where(mask, {P}, -float("inf"))\ntake = v > best\n'
               "best = tl.where(take, v, best)\nindex = tl.where(take, c, index)\n",
               "result = tl.min(tl.where(best == tl.max(best, axis=0), index, 2147483647), axis=0).to(tl.int64)\n"),
    "argmin": ('best = tl.full([BLOCK], float("inf"), tl.float32)\nindex = tl.zeros([BLOCK], dtype=tl.int32)\n',
               'v = tl.where(mask, {P}, float("inf"))\ntake = v < best\n'
               "best = tl.where(take, v, best)\nindex = tl.where(take, c, index)\n",
               "result = tl.min(tl.where(best == tl.min(best, axis=0), index, 2147483647), axis=0).to(tl.int64)\n"),
}
# Online max and sum of exponentials, per lane: a lane's sum is rescaled when its max grows. `safe`
# keeps -inf - -inf (a lane that has seen only masked columns) from making NaN.
_ONLINE_INIT = 'm_lane = tl.full([BLOCK], -float("inf"), tl.float32)\ns_lane = tl.zeros([BLOCK], dtype=tl.float32)\n'
_ONLINE_STEP = ('v = tl.where(mask, {P}, -float("inf"))\nm_new = tl.maximum(m_lane, v)\n'
                'safe = tl.where(m_new == -float("inf"), 0.0, m_new)\n'
                "s_lane = s_lane * tl.exp(m_lane - safe) + tl.exp(v - safe)\nm_lane = m_new\n")
_ONLINE_END = ('m = tl.max(m_lane, axis=0)\nm_safe = tl.where(m == -float("inf"), 0.0, m)\n'
               "s = tl.sum(s_lane * tl.exp(m_lane - m_safe), axis=0)\n")
_STORE_ROW_VALUE = "tl.store(out + row, {E}result, {args}row, 0, True).to(out.dtype.element_ty))\n"
_STORE = "tl.store(out + base + c, y.to(out.dtype.element_ty), mask=mask)\n"


def _reduction_body(kind: str, strategy: str) -> str:
    if kind == "logsumexp":
        if strategy == "single_pass":
            text = _single('v = tl.where(mask, {P}, -float("inf"))\nm = tl.max(v, axis=0)\n'
                           'm_safe = tl.where(m == -float("inf"), 0.0, m)\ns = tl.sum(tl.exp(v - m_safe), axis=0)\n')
        else:
            text = _ONLINE_INIT + _in_loop(_ONLINE_STEP) + _ONLINE_END
        return text + "result = tl.log(s) + m\n" + _STORE_ROW_VALUE
    init, step, end = _ACCUMULATE[kind]
    tiles = _single(step) if strategy == "single_pass" else _in_loop(step)
    return init + tiles + end + _STORE_ROW_VALUE


def _normalization_body(kind: str, strategy: str) -> str:
    finish = ("y = tl.exp(v - m) * (1.0 / s)\n" if kind == "softmax" else "y = v - m - tl.log(s)\n")
    write = finish + "y = {E}y, {args}base + c, c, mask)\n" + _STORE
    if strategy == "single_pass":
        return _single('v = tl.where(mask, {P}, -float("inf"))\nm = tl.max(v, axis=0)\n'
                       "s = tl.sum(tl.exp(v - m), axis=0)\n" + write)
    return _ONLINE_INIT + _in_loop(_ONLINE_STEP) + _ONLINE_END + _in_loop_reversed("v = {P}\n" + write)


def _norm_body(kind: str, strategy: str) -> str:
    """Layer norm: mean, then the variance about it (no cancellation); RMS norm: the mean square.
    A {SAVE} line follows where the prologue's value x is first computed (a second output may store it)."""
    write = "y = {E}y, {args}base + c, c, mask)\n" + _STORE
    if strategy == "single_pass":
        if kind == "layer":
            return _single("x = tl.where(mask, {P}, 0.0)\n{SAVE}\nmean = tl.sum(x, axis=0) / cols\n"
                           "d = tl.where(mask, x - mean, 0.0)\nrstd = 1.0 / tl.sqrt_rn(tl.sum(d * d, axis=0) / cols + {eps})\n"
                           "y = d * rstd\n" + write)
        return _single("x = tl.where(mask, {P}, 0.0)\n{SAVE}\nrstd = 1.0 / tl.sqrt_rn(tl.sum(x * x, axis=0) / cols + {eps})\n"
                       "y = x * rstd\n" + write)
    if kind == "layer":
        # One read for both moments: sums of x - shift and its square, shift being the row's first value
        # (near the mean, unlike 0, so E[d^2] - E[d]^2 does not cancel); then one read to write.
        first = "c = tl.arange(0, BLOCK)\nmask = c < 1\nshift = tl.sum(tl.where(mask, {P}, 0.0), axis=0)\n"
        return (first + "acc = tl.zeros([BLOCK], dtype=tl.float32)\nacc2 = tl.zeros([BLOCK], dtype=tl.float32)\n"
                + _in_loop("x = tl.where(mask, {P}, 0.0)\n{SAVE}\nd = tl.where(mask, x - shift, 0.0)\nacc += d\nacc2 += d * d\n")
                + "dmean = tl.sum(acc, axis=0) / cols\nmean = shift + dmean\n"
                + "var = tl.maximum(tl.sum(acc2, axis=0) / cols - dmean * dmean, 0.0)\n"
                + "rstd = 1.0 / tl.sqrt_rn(var + {eps})\n"
                + _in_loop_reversed("y = ({P} - mean) * rstd\n" + write))
    return ("acc = tl.zeros([BLOCK], dtype=tl.float32)\n" + _in_loop("x = tl.where(mask, {P}, 0.0)\n{SAVE}\nacc += x * x\n")
            + "rstd = 1.0 / tl.sqrt_rn(tl.sum(acc, axis=0) / cols + {eps})\n"
            + _in_loop_reversed("y = {P} * rstd\n" + write))


def _row_width(p: RowReduce | Norm) -> int:
    """Elements per row: the product of the reduced (or normalized) trailing dims of the main shape."""
    return math.prod(p.shape[-p.dims:]) if p.shape else 1


def _row_space(cols: int, strategies: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """Single pass first while the main shape's row fits comfortably in registers, looped first beyond."""
    if "single_pass" in strategies and cols > 8192:
        strategies = tuple(sorted(strategies, key=lambda s: s != "looped"))
    if cols > 32768:  # a vocabulary or an image plane: on an H200, tiles of 8192 on 16 warps led by 1-18 %
        return {"strategy": strategies, "BLOCK": (8192, 4096, 2048, 1024), "num_warps": (16, 8, 4)}
    warps = (8, 4, 16) if cols > 2048 else (4, 2, 8)
    return {"strategy": strategies, "BLOCK": (2048, 1024, 4096, 8192), "num_warps": warps}


def _row_kernel(kernel: _Kernel, body: str, prologue: Expr, epilogue: Expr | None, eps: float = 0.0,
                save_prologue: bool = False) -> str:
    """The row kernel; with `save_prologue`, a second output `res` receives the prologue's value."""
    save = "tl.store(res + base + c, x.to(res.dtype.element_ty), mask=mask)" if save_prologue else ""
    text = body.replace("{P}", f"kw_prologue({kernel.args}base + c, c, mask)").replace(
        "{E}", "kw_epilogue(").replace("{args}", kernel.args).replace("{eps}", repr(float(eps))).replace(
        "{SAVE}", save)
    return (kernel.helper("kw_prologue", prologue) + "\n\n"
            + kernel.helper("kw_epilogue", epilogue if epilogue is not None else Value(), with_value=True) + "\n\n"
            + _ROW.format(args=kernel.args, extra="res, " if save_prologue else "",
                          body=textwrap.indent(text, "    ")))


def _row_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that shape the code: a single pass ignores BLOCK (its tile is the row), so its
    source names no BLOCK and equal kernels render equal sources (which the generator does not redraw)."""
    return {k: v for k, v in params.items() if not (k == "BLOCK" and params["strategy"] == "single_pass")}


def _row_launch(params: dict[str, Any], out: str, outputs: tuple[str, ...] = ("value",)) -> list[str]:
    """Allocate, launch one program per row, return the outputs in the reference's order."""
    # single_pass: the whole row is one tile; looped: tiles of BLOCK, but no wider than the row.
    block = ("triton.next_power_of_2(kw_cols)" if params["strategy"] == "single_pass"
             else f"min(triton.next_power_of_2(kw_cols), {int(params['BLOCK'])})")
    names = {"value": "kw_out", "prologue": "kw_res"}
    allocate = [f"kw_out = {out}"] + (["kw_res = torch.empty_like(kw_x)"] if "prologue" in outputs else [])
    extra = "kw_res, " if "prologue" in outputs else ""
    return [*allocate, f"kw_row[(kw_rows,)]({{tensors}}kw_out, {extra}kw_cols, BLOCK={block}, "
            f"num_warps={int(params['num_warps'])})", "return " + ", ".join(names[o] for o in outputs)]


class RowReduceTemplate:
    name = "triton.row_reduce"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        if not isinstance(p, RowReduce) or p.kind not in (*REDUCTIONS, *NORMALIZATIONS):
            return False
        if p.kind in REDUCTIONS and p.epilogue is not None:
            # One value per row: the epilogue may only use the value, numbers and scalar tensors.
            if p.kind in ("argmax", "argmin") or any(leaf.layout != "scalar" for leaf in leaves(p.epilogue)):
                return False
        return _valid(analysis, p.prologue, [p.epilogue])

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, RowReduce)
        return _row_space(_row_width(p), ("single_pass", "looped"))

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, RowReduce)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue])
        if p.kind in NORMALIZATIONS:
            body, out = _normalization_body(p.kind, params["strategy"]), "torch.empty_like(kw_x)"
        else:
            dtype = "torch.int64" if p.kind in ("argmax", "argmin") else "kw_x.dtype"
            shape = f"kw_x.shape[:-{p.dims}]" + (f" + (1,) * {p.dims}" if p.keepdim else "")
            body, out = _reduction_body(p.kind, params["strategy"]), f"torch.empty({shape}, dtype={dtype}, device=kw_x.device)"
        source = _row_kernel(kernel, body, p.prologue, p.epilogue)
        return kernel.candidate(source, _row_launch(params, out),
                                _doc(self.name, f"{p.kind} over the last {p.dims} dim(s)", _row_params(params)), p.dims)


class NormTemplate:
    name = "triton.norm"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, Norm) and p.kind in ("layer", "rms") and (p.bias is None or p.kind == "layer")
                and _valid(analysis, p.prologue, [p.epilogue, p.weight, p.bias]))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Norm)
        return _row_space(_row_width(p), ("single_pass", "looped"))

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        kernel, source, launch = _norm(analysis, params)
        return kernel.candidate(source, launch, _doc(
            self.name, f"{p.kind} norm over the last {p.dims} dim(s), eps={p.eps}", _row_params(params)), p.dims)


def _norm(analysis: Analysis, params: dict[str, Any]) -> tuple[_Kernel, str, list[str]]:
    """triton.norm's kernel helper, kernels' source and launch lines."""
    p = analysis.pattern
    assert isinstance(p, Norm)
    epilogue = norm_epilogue(p)
    kernel = _Kernel(analysis, [p.prologue, epilogue])
    source = _row_kernel(kernel, _norm_body(p.kind, params["strategy"]), p.prologue, epilogue, p.eps,
                         save_prologue="prologue" in p.outputs)
    return kernel, source, _row_launch(params, "torch.empty_like(kw_x)", p.outputs)


# A row that may start anywhere (a vocabulary of 50257 or 30522 elements), read as its 16-aligned interior
# [lo, hi), which Triton loads in vectors, and the up to 15 elements before and after it in 32 lanes (the
# head in the first 16, the tail in the rest) with their mask. Element by element, triton.kl_div's row ran at
# 82 % of the speed of light on an H200, aligned at 96 %. Used by triton.kl_div and
# triton.softmax_cooperative (for chunks of the interior).
# In a row with no multiple of 16 inside, hi = lo - 16: the interior is empty and the head covers the row.
ALIGNED_ROW = """@triton.jit
def kw_interior(start, cols):
    return (start + 15) // 16 * 16, (start + cols) // 16 * 16


@triton.jit
def kw_edges(start, cols, lo, hi):
    edge = tl.arange(0, 32)
    offs = tl.where(edge < 16, start + edge, hi + edge - 16)
    end = start + cols
    return offs, tl.where(edge < 16, (offs < lo) & (offs < end), (offs >= lo) & (offs < end))
"""


def norm_epilogue(p: Norm) -> Expr:
    """A layer or RMS norm's epilogue with its affine step first: value * weight + bias, then the task's own."""
    affine: Expr = Value()
    if p.weight is not None:
        affine = Call("mul", (affine, p.weight))
    if p.bias is not None:
        affine = Call("add", (affine, p.bias))
    return _substitute(p.epilogue, affine)


def norm_parts(analysis: Analysis, params: dict[str, Any]) -> tuple[str, list[str]]:
    """triton.norm's pieces for a Norm with one output: (the kernels' source, the forward's lines from the
    tensors to `kw_out`; they need `import math`). triton.chain renders its norms with it."""
    kernel, source, launch = _norm(analysis, params)
    assert launch[-1] == "return kw_out"
    return source, kernel.forward_lines(launch[:-1], analysis.pattern.dims)


TEMPLATES = [PointwiseTemplate(), RowReduceTemplate(), NormTemplate()]
