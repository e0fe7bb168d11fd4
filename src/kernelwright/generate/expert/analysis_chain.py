"""Forwards that need several kernels in sequence -> Chain (patterns.py): MLP blocks (c_proj(gelu(c_fc(x))),
Llama's down_proj(silu(gate_proj(x)) * up_proj(x))), a product then a norm (BERT's LayerNorm(dense(h) + input)).

The graph is cut into stages at the tensors a kernel must write for the next one to read: the operands of
each matrix product (and the input of each norm) that are computed from another product or norm (c_fc's
output after its gelu, BERT's dense(h) + input), and where one
stage's elementwise epilogue would read two products (SwiGLU's gate and up) the earlier product, with the
unary ops after it that only it feeds (silu(gate)). Each stage is a graph of its own, the earlier stages'
outputs its extra placeholders (Input(len(forward args) + j) for stage j), and is analysed as any task is:
it must come out a Matmul (a bias and epilogue fused) or a Norm. Anything else (a stage of elementwise ops
alone, a reduction, an operand the product cannot read) leaves the forward to the single-kernel rules and
their refusals.
"""

from __future__ import annotations

from torch.fx import Graph, GraphModule, Node

from kernelwright.generate.expert.analysis import (
    _ELEMENTWISE,
    _MATMULS,
    _TRANSPOSES,
    _arg,
    _Graph,
    _skip_identities,
)
from kernelwright.generate.expert.patterns import Chain, Matmul, Norm, Unsupported

# What a stage may be (the chain template writes these).
STAGES = (Matmul, Norm)
_MAX_STAGES = 8


def match_chain(g: _Graph, live: set[Node], out: Node, dtype: str) -> Chain | None:
    """The forward as a Chain, or None when it is not several matrix products (and norms) in sequence that
    each stage's rules accept."""
    nodes = [n for n in g.gm.graph.nodes if n in live]
    heavy = [n for n in nodes if g.name(n) in _MATMULS or g.special(n)]
    if len(heavy) < 2 or not any(g.name(n) in _MATMULS for n in heavy) or any(g.name(n) == "conv2d" for n in nodes):
        return None
    order = {n: i for i, n in enumerate(nodes)}
    after_heavy = _after_heavy(nodes, set(heavy))
    boundaries = {out}
    for node in heavy:  # operands computed from a product or a norm are written by a kernel of their own
        for operand in _operands(g, node):
            if operand in after_heavy:
                boundaries.add(operand)
    for _ in range(4 * len(heavy)):  # a region reading several products: the earlier ones end stages of their own
        split = next(((b, inside) for b in sorted(boundaries, key=order.__getitem__)
                      if len(inside := [n for n in _region(b, boundaries) if n in heavy]) > 1), None)
        if split is None:
            break
        for node in sorted(split[1], key=order.__getitem__)[:-1]:
            end = _extended(g, node, boundaries)
            boundaries.add(end if end not in boundaries else node)
    else:
        return None
    ordered = sorted(boundaries, key=order.__getitem__)
    if len(ordered) > _MAX_STAGES:
        return None
    stages = []
    for j, b in enumerate(ordered):
        try:
            module, end = _stage_module(g, b, ordered[:j], boundaries)
            stage = _Graph(module).pattern_of(end, dtype)
        except Unsupported:
            return None  # the single-kernel rules refuse the forward, naming why
        if not isinstance(stage, STAGES):
            return None
        stages.append(stage)
    return Chain(tuple(stages))


def _after_heavy(nodes: list[Node], heavy: set[Node]) -> set[Node]:
    """The nodes computed from a product or a norm (those included)."""
    found: set[Node] = set()
    for n in nodes:  # graph order: inputs come first
        if n in heavy or any(i in found for i in n.all_input_nodes):
            found.add(n)
    return found


def _operands(g: _Graph, node: Node) -> list[Node]:
    """The tensors a product or a norm reads, through casts and transposes: the nodes a stage would read."""
    name, args, kwargs = g.call(node)
    if name == "linear":
        found = [args[0]]
    elif name == "addmm":
        found = [_arg(args, kwargs, 1, "mat1"), _arg(args, kwargs, 2, "mat2")]
    elif name in _MATMULS:
        found = [args[0], args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))]
    else:  # a reduction or a norm: its input
        found = [args[0]]
    result = []
    for arg in found:
        arg = _skip_identities(g, arg)
        while g.name(arg) in _TRANSPOSES:
            arg = _skip_identities(g, g.call(arg)[1][0])
        if isinstance(arg, Node):
            result.append(arg)
    return result


def _region(b: Node, boundaries: set[Node]) -> set[Node]:
    """What computing `b` takes, back to the forward's inputs and the other boundaries (which it reads)."""
    found, todo = set(), [b]
    while todo:
        node = todo.pop()
        if node in found or (node is not b and node in boundaries):
            continue
        found.add(node)
        todo.extend(node.all_input_nodes)
    return found


def _extended(g: _Graph, node: Node, boundaries: set[Node]) -> Node:
    """`node` with the elementwise ops after it that only it feeds (silu(gate), casts): what its stage writes."""
    while len(node.users) == 1:
        (user,) = node.users
        computed = [i for i in user.all_input_nodes if i is not node and i.op not in ("placeholder", "get_attr")]
        if user in boundaries or g.name(user) not in _ELEMENTWISE or computed:
            break
        node = user
    return node


def _stage_module(g: _Graph, b: Node, earlier: list[Node], boundaries: set[Node]) -> tuple[GraphModule, Node]:
    """A graph computing `b` alone (and b's node there): the forward's inputs, then the earlier stages' outputs
    as placeholders."""
    graph = Graph()
    env: dict[Node, Node] = {}
    for p in g.inputs:
        env[p] = graph.node_copy(p, lambda x: env[x])
    for j, prev in enumerate(earlier):
        env[prev] = graph.placeholder(f"kw_stage{j}")
        env[prev].meta = dict(prev.meta)
    region = _region(b, boundaries)
    for n in g.gm.graph.nodes:
        if n in region and n not in env:
            env[n] = graph.node_copy(n, lambda x: env[x])
    graph.output(env[b])
    return GraphModule(g.gm, graph), env[b]
