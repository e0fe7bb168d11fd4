"""The Triton template for rotary embeddings (the Rotary pattern, or one Pointwise holding rotate_half):
elementwise outputs that pair each element with the one half a row away, as Llama's
q * cos + rotate_half(q) * sin and k's alike.

triton.rotary: a row is the last dim (head_dim). Each program takes BLOCK_R whole rows of one output and
holds each as its two halves side by side, [BLOCK_R, half] tiles loaded contiguously (vectorized), so
rotate_half is the other half with a sign: no gather, no second pass. The expression is computed on both
halves at once in fp32 and each half stored once, in the output's dtype. Every tensor it reads (q, and
cos and sin broadcast over heads) is read through the strides of its view expanded to the output's
shape: one offset per row, from the row's 3 leading coordinates (a division per row, not per element),
plus the column times the last dim's stride. Each output is one launch; outputs whose expressions match
(q's and k's) share one kernel.

Parameters:
  BLOCK_R    rows per program
  order      which rows a program takes: "dim1" (neighbouring indices of dim 1 of the output padded to 4
             dims, the heads of [B, H, S, D], at one position: they read the same rows of cos and sin,
             which then come from L1 rather than L2) or "rows" (neighbouring rows in memory)
  num_warps  threads per program (32 each)
"""

from __future__ import annotations

import textwrap
from typing import Any

from kernelwright.generate.expert.patterns import (
    MAX_BROADCAST_RANK, Analysis, Call, Const, Expr, Input, Pointwise, Rotary, Weight, calls, leaves,
)
from kernelwright.generate.expert.templates.triton import _DTYPES, _TABLE, _doc, _literal, _special, _supported

Leaf = Input | Weight

_KERNEL = """@triton.jit
def {name}({params}out, rows, d1, d2, half, BLOCK_R: tl.constexpr, HALF: tl.constexpr):
    # BLOCK_R whole rows, each as its two halves: [BLOCK_R, HALF] tiles.
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = tl.arange(0, HALF)
    mask = (r < rows)[:, None] & (c < half)[None, :]
    # The row's coordinates over the leading dims (padded to 3): a division per row, not per element.
{coordinates}
{body}
    o = out + ((i0 * d1 + i1) * d2 + i2)[:, None] * (2 * half) + c[None, :]
    tl.store(o, {first}.to(out.dtype.element_ty), mask=mask)
    tl.store(o + half, {second}.to(out.dtype.element_ty), mask=mask)
"""
_ORDERS = {
    "dim1": ("i1 = (r % d1).to(tl.int64)", "rest = r // d1", "i2 = (rest % d2).to(tl.int64)",
             "i0 = (rest // d2).to(tl.int64)"),
    "rows": ("i2 = (r % d2).to(tl.int64)", "rest = r // d2", "i1 = (rest % d1).to(tl.int64)",
             "i0 = (rest // d1).to(tl.int64)"),
}


def _outputs(analysis: Analysis) -> tuple[Pointwise, ...]:
    p = analysis.pattern
    return p.outputs if isinstance(p, Rotary) else (p,)


def _writable(expr: Expr) -> bool:
    """Ops the kernel writes: rotate_half, and the elementwise table's (pow and clamp by constants)."""
    if not isinstance(expr, Call):
        return True
    # The op alone, its tensor operands as numbers: _supported checks the op and its constant operands.
    alone = expr.op == "rotate_half" or _supported(Call(expr.op, tuple(
        a if isinstance(a, Const) else Const(0.0) for a in expr.args)))
    return alone and all(_writable(a) for a in expr.args)


def _valid(analysis: Analysis, output: Pointwise) -> bool:
    """A writable expression sized by a full forward input, over an even last dim, in at most 4 dims."""
    found = leaves(output.expr)
    return (output.dtype in _DTYPES and 1 <= len(output.shape) <= MAX_BROADCAST_RANK and output.shape[-1] % 2 == 0
            and any(isinstance(leaf, Input) and leaf.layout == "full" for leaf in found)
            and all(leaf.index < len(analysis.forward_args) for leaf in found if isinstance(leaf, Input))
            and _writable(output.expr))


def _halves(expr: Expr, names: dict[Leaf, str]) -> tuple[list[str], str, str]:
    """Statements computing `expr` on both halves of the rows: (lines, the first half's, the second half's).

    rotate_half(e) on the first half is minus e on the second, on the second half e on the first; each
    leaf half is loaded once, each subexpression computed once per half."""
    lines: list[str] = []
    done: dict[tuple[Expr, int], str] = {}

    def bind(code: str) -> str:
        name = f"v{len(lines)}"
        lines.append(f"    {name} = {code}")
        return name

    def walk(e: Expr, side: int) -> str:
        if isinstance(e, Const):
            return _literal(e.value)
        if (e, side) not in done:
            if isinstance(e, (Input, Weight)):
                n = names[e]
                where = f"{n}_ptrs + half * {n}_s3" if side else f"{n}_ptrs"
                done[e, side] = bind(f"tl.load({where}, mask=mask, other=0.0).to(tl.float32)")
            elif e.op == "rotate_half":
                other = walk(e.args[0], 1 - side)
                done[e, side] = bind(f"-{other}") if side == 0 else other
            else:
                args = [walk(a, side) for a in e.args]
                done[e, side] = bind(_special(e, args) or _TABLE[e.op].format(*args))
        return done[e, side]

    first, second = walk(expr, 0), walk(expr, 1)
    return lines, first, second


def _kernel(name: str, expr: Expr, order: str) -> tuple[str, dict[Leaf, str]]:
    """The kernel for one output's expression, and its leaves' parameter names (t0, t1, ... in first-seen
    order, so outputs whose expressions differ only in which input they rotate get the same source)."""
    names = {leaf: f"t{i}" for i, leaf in enumerate(leaves(expr))}
    params = "".join(f"{n}, {n}_s0, {n}_s1, {n}_s2, {n}_s3, " for n in names.values())
    pointers = [f"    {n}_ptrs = {n} + (i0 * {n}_s0 + i1 * {n}_s1 + i2 * {n}_s2)[:, None] + c[None, :] * {n}_s3"
                for n in names.values()]
    lines, first, second = _halves(expr, names)
    return _KERNEL.format(name=name, params=params, coordinates="\n".join(f"    {line}" for line in _ORDERS[order]),
                          body="\n".join(pointers + lines), first=first, second=second), names


class RotaryTemplate:
    name = "triton.rotary"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        if not (isinstance(p, Rotary) or isinstance(p, Pointwise) and "rotate_half" in calls(p.expr)):
            return False
        return all(_valid(analysis, output) for output in _outputs(analysis))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        outputs = _outputs(analysis)
        half = 1 << max(0, outputs[0].shape[-1] // 2 - 1).bit_length()
        rows = max(1, min(64, 2048 // half))  # tiles of about 2048 elements a half
        broadcast = any(leaf.layout == "broadcast" for output in outputs for leaf in leaves(output.expr))
        return {"BLOCK_R": (rows, *[r for r in (16, 32, 64, 8, 4) if r != rows]),
                "order": ("dim1", "rows") if broadcast else ("rows", "dim1"), "num_warps": (4, 8, 2)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        kernels: dict[str, str] = {}  # source (named {name}) -> its kernel's name
        forward, returns = [], []
        args = analysis.forward_args
        for j, output in enumerate(_outputs(analysis)):
            template, names = _kernel("{name}", output.expr, params["order"])
            name = kernels.setdefault(template, "kw_rotary" + (str(len(kernels)) if kernels else ""))
            main = next(leaf for leaf in names if isinstance(leaf, Input) and leaf.layout == "full")
            x = args[main.index]
            forward += [f"kw_out{j} = torch.empty({x}.shape, dtype={x}.dtype, device={x}.device)",
                        f"kw_pad{j} = 4 - {x}.dim()", f"kw_sizes{j} = (1,) * kw_pad{j} + tuple({x}.shape)",
                        f"kw_rows{j} = kw_out{j}.numel() // max(kw_sizes{j}[3], 1)"]
            tensors = []
            for leaf, n in names.items():  # each read through its view as the output's shape
                base = args[leaf.index] if isinstance(leaf, Input) else f"self.{leaf.name}"
                view = base + "".join(f".unsqueeze({d})" for d in leaf.unsqueeze)
                forward.append(f"kw_{n}_{j} = {view}.expand({x}.shape)")
                tensors.append(f"kw_{n}_{j}, *((0,) * kw_pad{j} + kw_{n}_{j}.stride()), ")
            block = int(params["BLOCK_R"])
            forward.append(f"{name}[(triton.cdiv(kw_rows{j}, {block}),)]({''.join(tensors)}kw_out{j}, kw_rows{j}, "
                           f"kw_sizes{j}[1], kw_sizes{j}[2], kw_sizes{j}[3] // 2, BLOCK_R={block}, "
                           f"HALF=triton.next_power_of_2(kw_sizes{j}[3] // 2), num_warps={int(params['num_warps'])})")
            returns.append(f"kw_out{j}")
        forward.append("return " + ", ".join(returns))
        # The task's imports first (its __init__ may need them), then ours that it lacks.
        own = ["import torch", "import torch.nn as nn", "import triton", "import triton.language as tl"]
        imports = [analysis.imports.strip(), *(line for line in own if line not in analysis.imports.splitlines())]
        init = textwrap.indent(textwrap.dedent(analysis.init_source).strip(), " " * 4)
        body = textwrap.indent("\n".join(forward), " " * 8)
        source = "\n\n".join(template.replace("{name}", name) for template, name in kernels.items())
        doc = _doc(self.name, f"{len(returns)} elementwise output(s) with rotate_half", params)
        return (f'"""{doc}"""\n' + "\n".join(filter(None, imports)) + f"\n\n\n{source}\n\nclass ModelNew(nn.Module):\n"
                f"{init}\n\n    def forward(self, {', '.join(args)}):\n{body}\n")


TEMPLATES = [RotaryTemplate()]
