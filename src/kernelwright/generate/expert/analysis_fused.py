"""The analysis of forwards that return several outputs computed side by side: projections of one input
(Projections) and rotary embeddings (Rotary), patterns.py's. Part of analysis.py, which calls
`several_outputs` when no single pattern and no norm-with-its-input explains the outputs, and
`rotated_half` when an elementwise expression holds a torch.cat.

Recognized forms, with dtype casts (.to, .float, ...) and .contiguous() anywhere between:
  projections   each output a matrix product of the same forward input by a 2-D weight (nn.Linear,
                F.linear, @, ...), then only views: view / reshape (sizes: numbers, -1, the input's own
                dims as `b, s, _ = x.shape` or x.size(i) read them), transpose, permute.
  rotate_half   torch.cat((-x[..., h:], x[..., :h]), dim=-1) with h half of x's last dim (a number or
                x.shape[-1] // 2), or the same over x.chunk(2, dim=-1)'s two parts.
  rotary        every output elementwise (a Pointwise), at least one holding rotate_half.
"""

from __future__ import annotations

import operator
from typing import Any

from torch.fx import Node

from kernelwright.generate.expert.analysis import (
    _IDENTITY, _MATMULS, _UNARY, _arg, _Graph, _is_number, _matmul, _skip_identities,
)
from kernelwright.generate.expert.patterns import (
    Dim, Pointwise, Projections, Rotary, Unsupported, View, calls,
)

_CATS = ("cat", "concat", "concatenate")
_VIEW_OPS = {"view": "view", "reshape": "reshape", "transpose": "transpose", "swapaxes": "transpose",
             "swapdims": "transpose", "permute": "permute"}
_ARITHMETIC = (operator.floordiv, operator.mul, operator.add, operator.sub)


def several_outputs(g: _Graph, outs: list[Node], dtype: str) -> Projections | Rotary | None:
    """The outputs as one pattern; None when they are neither projections nor rotary embeddings (the caller
    refuses them); Unsupported when they are, in a form the expert does not write."""
    return _projections(g, outs, dtype) or _rotary(g, outs, dtype)


# -- projections ------------------------------------------------------------------------------------------

def _projections(g: _Graph, outs: list[Node], dtype: str) -> Projections | None:
    bases = [_viewed(g, out) for out in outs]
    if not any(g.name(node) in _MATMULS for node in bases):
        return None
    for node in bases:
        if g.name(node) not in _MATMULS:
            what = g.what(node) if g.name(node) else f"{node.target} itself"  # an input or a parameter, returned
            raise g.refuse(node, f"{what} beside matrix products; of several outputs the expert writes products "
                                 "of one input, each returned as it is or through views")
    products = tuple(_matmul(g, node, node, dtype) for node in bases)
    for node, product in zip(bases, products):
        if product.batched or product.a != products[0].a or product.epilogue is not None:
            raise g.refuse(node, f"{g.what(node)} is batched, of another input or adds a tensor; the expert writes "
                                 "several products of one input by 2-D weights, with a bias at most")
    return Projections(products, tuple(_views(g, out) for out in outs))


def _viewed(g: _Graph, out: Node) -> Node:
    """The node an output is a view of (through views, casts and copies)."""
    while g.name(out) in (*_IDENTITY, *_VIEW_OPS):
        out = g.call(out)[1][0]
    return out


def _views(g: _Graph, out: Node) -> tuple[View, ...]:
    """The views from `_viewed(out)` to the output, in the order forward applies them."""
    views: list[View] = []
    node = out
    while (name := g.name(node)) in (*_IDENTITY, *_VIEW_OPS):
        _, args, kwargs = g.call(node)
        if name in _VIEW_OPS:
            op = _VIEW_OPS[name]
            if op == "transpose":
                rest = [_arg(args, kwargs, 1, "dim0"), _arg(args, kwargs, 2, "dim1")]
            else:  # sizes or dims as arguments, or as one tuple: view(b, s, -1, d), view((b, s, -1, d))
                rest = args[1:] or [kwargs.get("shape", kwargs.get("size", kwargs.get("dims")))]
                rest = list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
            if op in ("view", "reshape"):
                rest = [_size(g, r, node) for r in rest]
            elif not all(isinstance(d, int) for d in rest):
                raise g.refuse(node, f"{name} by dims {rest}; the expert replays it by numbers")
            views.insert(0, View(op, tuple(rest)))
        node = args[0]
    return tuple(views)


def _size(g: _Graph, arg: Any, user: Node) -> int | Dim:
    """A view's size: a number as it is, a forward input's dim as a Dim (read again at run time)."""
    if _is_number(arg):
        return int(arg)
    found = _shape_read(g, arg)
    if found is None or found[0].op != "placeholder":
        raise g.refuse(user, f"{g.name(user)} to a size computed by {g.name(arg)}; the expert replays views whose "
                             "sizes are numbers or a forward input's dims")
    tensor, dim = found
    return Dim(g.inputs.index(tensor), dim % len(g.shape(tensor)))


def _shape_read(g: _Graph, arg: Any) -> tuple[Node, int] | None:
    """(the tensor, the dim) when `arg` reads one size of a tensor: x.shape[i] (unpacked or indexed), x.size(i)."""
    if not isinstance(arg, Node):
        return None
    name, args, kwargs = g.call(arg) if g.name(arg) else ("", [], {})
    if name == "size" and isinstance(dim := _arg(args, kwargs, 1, "dim"), int):
        return args[0], dim
    if arg.target is operator.getitem and isinstance(args[1], int) and g.name(args[0]) in (".shape", "size"):
        whole = args[0]
        if g.name(whole) == ".shape" or len(g.call(whole)[1]) == 1:  # x.shape, or x.size() without a dim
            return g.call(whole)[1][0], args[1]
    return None


# -- rotary embeddings ----------------------------------------------------------------------------------

def _rotary(g: _Graph, outs: list[Node], dtype: str) -> Rotary | None:
    found: list[Any] = []
    error: Unsupported | None = None
    for out in outs:
        try:
            found.append(g.pattern_of(out, dtype))
        except Unsupported as e:
            error = error or e
    if not any(isinstance(p, Pointwise) and "rotate_half" in calls(p.expr) for p in found):
        return None
    if error is not None:  # an output of rotary embeddings holds something the expert does not write
        raise error
    for out, pattern in zip(outs, found):
        if not isinstance(pattern, Pointwise):
            raise g.refuse(out, f"a {type(pattern).__name__} output beside rotary embeddings; the expert writes "
                                "their outputs elementwise")
    return Rotary(tuple(found))


def rotated_half(g: _Graph, node: Node) -> Node | None:
    """x when the node is rotate_half(x): cat((-x[..., h:], x[..., :h]), -1), h half of x's last dim, over
    slices or x.chunk(2, -1); None for any other concatenation."""
    if g.name(node) not in _CATS:
        return None
    args, kwargs = g.call(node)[1:]
    parts, dim = _arg(args, kwargs, 0, "tensors"), _arg(args, kwargs, 1, "dim", 0)
    rank = len(g.shape(node))
    if not (isinstance(parts, (tuple, list)) and len(parts) == 2 and isinstance(dim, int) and rank
            and dim % rank == rank - 1):
        return None
    negated, first = _skip_identities(g, parts[0]), _skip_identities(g, parts[1])
    if _UNARY.get(g.name(negated) or "") != "neg":
        return None
    second = _skip_identities(g, g.call(negated)[1][0])
    x_second, x_first = _half_of(g, second), _half_of(g, first)
    if x_second is None or x_first is None or x_second[0] is not x_first[0] or (x_second[1], x_first[1]) != (1, 0):
        return None
    return x_first[0]


def _half_of(g: _Graph, node: Any) -> tuple[Node, int] | None:
    """(x, 0 or 1) when the node is x's first or second half along its last dim (even): a slice x[..., :h] or
    x[..., h:] (h a number, negative or not, or computed from shapes), or chunk(x, 2, -1)[0 or 1]."""
    if not (isinstance(node, Node) and node.target is operator.getitem and isinstance(node.args[0], Node)):
        return None
    x, index = node.args
    if g.name(x) == "chunk":
        args, kwargs = g.call(x)[1:]
        base, chunks, dim = args[0], _arg(args, kwargs, 1, "chunks"), _arg(args, kwargs, 2, "dim", 0)
        rank = len(g.shape(base)) if g.is_tensor(base) else 0
        if (chunks == 2 and isinstance(dim, int) and rank and dim % rank == rank - 1 and index in (0, 1)
                and g.shape(base)[-1] % 2 == 0):
            return base, index
        return None
    if not g.is_tensor(x):
        return None
    shape = g.shape(x)
    index = index if isinstance(index, tuple) else (index,)
    if index[:1] == (Ellipsis,):
        index = (slice(None),) * (len(shape) - len(index) + 1) + index[1:]
    if not (shape and len(index) == len(shape) and shape[-1] % 2 == 0 and all(i == slice(None) for i in index[:-1])
            and isinstance(last := index[-1], slice) and last.step in (None, 1)):
        return None
    width = shape[-1]

    def bound(value: Any, default: int) -> int | None:  # a slice bound as a column, counted from the left
        column = default if value is None else _int(g, value)
        return column + width if column is not None and column < 0 else column

    return {(0, width // 2): (x, 0), (width // 2, width): (x, 1)}.get((bound(last.start, 0), bound(last.stop, width)))


def _int(g: _Graph, arg: Any) -> int | None:
    """The number an argument computes from numbers and shapes at the traced shapes (x.shape[-1] // 2)."""
    if _is_number(arg):
        return int(arg) if int(arg) == arg else None
    if (found := _shape_read(g, arg)) is not None:
        tensor, dim = found
        return g.shape(tensor)[dim] if g.is_tensor(tensor) else None
    if isinstance(arg, Node) and arg.op == "call_function" and arg.target in _ARITHMETIC and len(arg.args) == 2:
        a, b = (_int(g, a) for a in arg.args)
        return arg.target(a, b) if a is not None and b is not None else None
    return None

