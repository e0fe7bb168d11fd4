"""The analysis of the distillation loss: F.kl_div(log_softmax(student), softmax(teacher)) as one
KLDivergence pattern (patterns.py). Part of analysis.py, which calls `match_kl_div` after its scans and
cross-entropy; kept apart because here two softmaxes and a loss are one pattern, where the other
matchers allow one reduction per kernel.

Recognized forms, with dtype casts (.to, .float, ...) anywhere between:
  F.kl_div(F.log_softmax(s, dim=-1), F.softmax(t, dim=-1), reduction=..., log_target=False)
  F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), reduction=..., log_target=True)
  nn.KLDivLoss(reduction=..., log_target=...) called the same way; nn.Softmax and nn.LogSoftmax too
where s and t are elementwise expressions of the forward's tensors (a temperature: s / T), the
reduction is batchmean, sum or mean, and elementwise ops with numbers and scalars may follow (* T^2).
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.fx import Node

from kernelwright.generate.expert.analysis import (
    _MATMULS, _arg, _epilogue, _Exprs, _Graph, _skip_identities,
)
from kernelwright.generate.expert.patterns import KL_REDUCTIONS, KLDivergence, Value, leaves


def match_kl_div(g: _Graph, live: set[Node], out: Node, dtype: str) -> KLDivergence | None:
    """The pattern when the output depends on a kl_div (None when it does not); anything it cannot write
    (another reduction beside it, a target given as probabilities, reduction "none") is refused."""
    nodes = [n for n in g.gm.graph.nodes if n in live]
    found = [n for n in nodes if _is_kl_div(g, n)]
    if not found:
        return None
    node = found[0]
    args, kwargs = list(node.args), dict(node.kwargs)
    if node.op == "call_module":
        m = g.gm.get_submodule(node.target)
        legacy, reduction, log_target = (None, None), m.reduction, m.log_target
    else:
        legacy = (_arg(args, kwargs, 2, "size_average"), _arg(args, kwargs, 3, "reduce"))
        reduction, log_target = _arg(args, kwargs, 4, "reduction", "mean"), _arg(args, kwargs, 5, "log_target", False)
    if legacy != (None, None) or reduction not in KL_REDUCTIONS:
        raise g.refuse(node, f"kl_div with size_average, reduce or reduction {reduction!r}; the expert writes the "
                             f"summed loss ({', '.join(KL_REDUCTIONS)}), not the elementwise terms")
    student = _softmax_of(g, _arg(args, kwargs, 0, "input"), "log_softmax")
    teacher = _softmax_of(g, _arg(args, kwargs, 1, "target"), "log_softmax" if log_target else "softmax")
    if student is None or teacher is None:
        target = "log_softmax (log_target=True)" if log_target else "softmax (log_target=False)"
        raise g.refuse(node, f"kl_div whose input is not log_softmax or whose target is not {target} of logits, "
                             "over the last dim; the expert writes the distillation loss between two logits")
    shape = g.shape(student)
    if g.shape(teacher) != shape:
        raise g.refuse(node, f"kl_div of {shape} and {g.shape(teacher)}; the expert reads equal shapes")
    others = [n for n in nodes if n not in (node, student, teacher)
              and (_is_kl_div(g, n) or g.special(n) or g.name(n) in (*_MATMULS, "conv2d"))]
    if others:
        raise g.refuse(others[0], f"{g.what(others[0])} with kl_div; the expert writes one loss per kernel, with "
                                  "elementwise ops only")
    logits = [_Exprs(g, shape).expr(g.call(n)[1][0], n) for n in (student, teacher)]
    epilogue = _epilogue(g, (node,), out, shape)
    if any(leaf.layout != "scalar" for leaf in leaves(epilogue or Value())):
        raise g.refuse(out, "the kl_div's result is combined with tensors; after the loss the expert's epilogue "
                            "reads only the loss, numbers and scalars")
    return KLDivergence(*logits, reduction, shape, dtype, epilogue)


def _is_kl_div(g: _Graph, node: Node) -> bool:
    if node.op == "call_module":
        return isinstance(g.gm.get_submodule(node.target), nn.KLDivLoss)
    return node.op == "call_function" and g.name(node) == "kl_div"


def _softmax_of(g: _Graph, arg: Any, name: str) -> Node | None:
    """The `name` (softmax or log_softmax) node that `arg` is through casts, when it works over the last dim
    and keeps its input's dtype (no dtype argument); None otherwise."""
    node = _skip_identities(g, arg)
    if g.name(node) != name or not g.is_tensor(node):
        return None
    args, kwargs = g.call(node)[1:]
    dim, rank = _arg(args, kwargs, 1, "dim"), len(g.shape(node))
    if kwargs.get("dtype") is not None or not (rank and isinstance(dim, int) and dim % rank == rank - 1):
        return None
    return node
