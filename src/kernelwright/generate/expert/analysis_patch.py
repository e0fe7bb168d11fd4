"""The analysis of ViT's patch embedding as one PatchEmbed pattern (patterns.py). Part of analysis.py, whose
`pattern_of` calls `match_patch_embed` before its convolution rule (which reads only elementwise ops after
a convolution, and so refuses the torch.cat); kept apart because here a convolution, views and a cat are
one pattern.

Recognized form, with dtype casts (.to, .float, ...) and .contiguous() anywhere between:
  tokens = conv2d(x, weight, bias, kernel_size=p, stride=p).flatten(2).transpose(1, 2)
  out = torch.cat((cls_token.expand(N, -1, -1), tokens), dim=1) + pos_embed      (either order of the add)
where the convolution is nn.Conv2d or F.conv2d (stride equal to the kernel, no padding, dilation 1, one
group: non-overlapping patches, so a plain GEMM), cls_token a parameter of D elements and pos_embed one of
(1 + P) * D. A cat beside a convolution in any other form is refused, naming what differs.
"""

from __future__ import annotations

import math

from torch.fx import Node

from kernelwright.generate.expert.analysis import (
    _IDENTITY,
    _arg,
    _conv,
    _Graph,
    _skip_identities,
)
from kernelwright.generate.expert.patterns import PatchEmbed, Weight

_CATS = ("cat", "concat", "concatenate")
_SHAPES = (".shape", "size", "getitem")  # non-tensor nodes reading sizes (the expand's N)
_ROW_VIEWS = ("view", "reshape", "unsqueeze", "flatten")


def match_patch_embed(g: _Graph, live: set[Node], out: Node, dtype: str) -> PatchEmbed | None:
    """The pattern when the output depends on a convolution and a cat (None when it does not); Unsupported
    when they are in a form the expert does not write."""
    nodes = [n for n in g.gm.graph.nodes if n in live]
    cats = [n for n in nodes if g.name(n) in _CATS]
    convs = [n for n in nodes if g.name(n) == "conv2d"]
    if not cats or not convs:
        return None
    cat, pos, used = _cat_plus_pos(g, out)
    if cat is not cats[0] or pos is None:
        raise g.refuse(cats[0], f"{g.name(cats[0])} with a convolution other than as a patch embedding's "
                                "cat((cls_token.expand(N, -1, -1), tokens), dim=1) + pos_embed; the expert writes "
                                "that form only")
    _, args, kwargs = g.call(cat)
    parts = _arg(args, kwargs, 0, "tensors")
    dim = _arg(args, kwargs, 1, "dim", 0)
    shape = g.shape(cat)
    if not (isinstance(parts, (tuple, list)) and len(parts) == 2 and len(shape) == 3 and isinstance(dim, int)
            and dim % 3 == 1):
        raise g.refuse(cat, f"{g.name(cat)} of other than two 3-D tensors along dim 1; the expert writes a patch "
                            "embedding's cat((cls_token.expand(N, -1, -1), tokens), dim=1)")
    cls, cls_nodes = _expanded_parameter(g, parts[0])
    conv, token_nodes = _tokens(g, parts[1])
    if cls is None or conv is None:
        raise g.refuse(cat, f"{g.name(cat)} of other than a parameter expanded over the batch, then "
                            "conv2d(x).flatten(2).transpose(1, 2); the expert writes a patch embedding's tokens "
                            "after its class token")
    ancestors, todo = set(), [conv]
    while todo:
        node = todo.pop()
        if node not in ancestors:
            ancestors.add(node)
            todo.extend(node.all_input_nodes)
    c = _conv(g, ancestors, conv, dtype)
    assert c is not None
    if c.stride != c.kernel_size or c.padding != (0, 0) or c.dilation != (1, 1) or c.groups != 1:
        raise g.refuse(conv, f"{g.what(conv)} with kernel {c.kernel_size}, stride {c.stride}, padding {c.padding}, "
                             f"dilation {c.dilation}, groups {c.groups} before a cat; the expert writes a patch "
                             "embedding as a GEMM: stride equal to the kernel, no padding, dilation 1, one group")
    _, tokens, d = shape
    if (tokens != 1 + c.shape[2] * c.shape[3] or d != c.shape[1] or g.tensors[cls.name].numel() != d
            or g.tensors[pos.name].numel() != tokens * d or g.shape(out) != shape):
        raise g.refuse(out, f"a class token of {tuple(g.tensors[cls.name].shape)} or a position embedding of "
                            f"{tuple(g.tensors[pos.name].shape)} over tokens {shape}; the expert reads one class "
                            "token row and a position embedding of every row, the same for each image")
    known = {out, cat, conv, *used, *cls_nodes, *token_nodes, *ancestors}
    others = [n for n in nodes if n.op.startswith("call") and n not in known
              and not (g.name(n) in _SHAPES and not g.is_tensor(n))]
    if others:
        raise g.refuse(others[0], f"{g.what(others[0])} in a patch embedding; the expert writes the convolution, "
                                  "the class token and the position embedding only")
    return PatchEmbed(c.x, c.weight, Weight(c.bias.name, "row") if c.bias is not None else None,
                      Weight(cls.name, "row"), Weight(pos.name, "full"), c.kernel_size, shape, c.in_shape, dtype)


def _parameter(g: _Graph, arg: object) -> Weight | None:
    arg = _skip_identities(g, arg)
    if isinstance(arg, Node) and arg.op == "get_attr" and arg.target in g.tensors:
        return Weight(arg.target, "full")
    return None


def _cat_plus_pos(g: _Graph, out: Node) -> tuple[Node | None, Weight | None, list[Node]]:
    """(the cat, the position embedding, the nodes between) when out is cat + parameter, either order."""
    used = []
    node = out
    while g.name(node) in _IDENTITY:
        used.append(node)
        node = g.call(node)[1][0]
    name, args, kwargs = g.call(node) if isinstance(node, Node) and node.op.startswith("call") else ("", [], {})
    if name not in ("add", "__add__", "__radd__") or len(args) != 2 or kwargs.get("alpha", 1) != 1:
        return None, None, used
    used.append(node)
    for first, second in ((args[0], args[1]), (args[1], args[0])):
        inner = _skip_identities(g, first)
        if g.name(inner) in _CATS and (pos := _parameter(g, second)) is not None:
            while first is not inner:  # the casts between
                used.append(first)
                first = g.call(first)[1][0]
            return inner, pos, used
    return None, None, used


def _expanded_parameter(g: _Graph, arg: object) -> tuple[Weight | None, list[Node]]:
    """The parameter behind cls_token.expand(N, -1, -1) (through casts and views: its D elements are one
    row whatever its shape, which the caller checks), and the nodes on the way."""
    seen = []
    node = arg
    while isinstance(node, Node) and g.name(node) in (*_IDENTITY, "expand", "expand_as", *_ROW_VIEWS):
        seen.append(node)
        node = g.call(node)[1][0]
    if not any(g.name(n) in ("expand", "expand_as") for n in seen):
        return None, seen
    return _parameter(g, node), seen


def _tokens(g: _Graph, arg: object) -> tuple[Node | None, list[Node]]:
    """The conv2d behind conv(x).flatten(2).transpose(1, 2) (through casts), and the nodes on the way."""
    seen = []
    node = arg

    def step() -> None:
        nonlocal node
        while isinstance(node, Node) and g.name(node) in _IDENTITY:
            seen.append(node)
            node = g.call(node)[1][0]

    step()
    name, args, kwargs = g.call(node) if isinstance(node, Node) and node.op.startswith("call") else ("", [], {})
    if name in ("transpose", "swapaxes", "swapdims"):
        dims = [_arg(args, kwargs, 1, "dim0"), _arg(args, kwargs, 2, "dim1")]
        if not all(isinstance(d, int) for d in dims) or sorted(d % 3 for d in dims) != [1, 2]:
            return None, seen
    elif name == "permute":
        dims = list(args[1]) if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
        if [d % 3 if isinstance(d, int) else d for d in dims] != [0, 2, 1]:
            return None, seen
    else:
        return None, seen
    seen.append(node)
    node = args[0]
    step()
    name, args, kwargs = g.call(node) if isinstance(node, Node) and node.op.startswith("call") else ("", [], {})
    start, end = _arg(args, kwargs, 1, "start_dim", 0), _arg(args, kwargs, 2, "end_dim", -1)
    if name != "flatten" or not isinstance(start, int) or start % 4 != 2 or end not in (-1, 3):
        return None, seen
    seen.append(node)
    node = args[0]
    step()
    if g.name(node) != "conv2d" or math.prod(g.shape(node)) == 0:
        return None, seen
    return node, seen
