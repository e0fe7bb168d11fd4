"""The analysis of attention: a forward that returns softmax(scale * q @ k^T (+ causal mask)) @ v, as one
Attention pattern (patterns.py). Part of analysis.py, which calls `match_attention` before its other
matchers; kept apart because attention reads the graph differently: two matrix products and a softmax
are one pattern here, and masks and scales are values the graph computes, not elementwise ops.

Recognized forms, with dtype casts (.to, .float, ...) and .contiguous() anywhere between:
  F.scaled_dot_product_attention(q, k, v, attn_mask=None or a causal mask, dropout_p=0,
                                 is_causal, scale, enable_gqa)
  matmul(softmax(s, dim=-1), v), where s is matmul(q, k.transpose(-2, -1)) multiplied or divided by
  numbers (on q, on k or on the scores), with at most one causal mask: `s + mask` (0 on and below the
  diagonal, -inf or a very negative number above), `s.masked_fill(mask, -inf)` (True above),
  `torch.where(mask, s, -inf)` (True on and below).
k and v may be repeated over heads (Llama's repeat_kv, repeat_interleave over the head dim, or a single
kv head broadcast by matmul): grouped-query attention.

Masks and scales are values the graph computes from shapes and buffers, not from the inputs' values:
they are evaluated here, on the CPU at the traced shapes, and a mask must be exactly causal at that size.
A scale computed from the shapes must be head_dim ** -0.5 (then the candidate recomputes it at run
time, as sdpa's default does); a number written in the task is kept as it is. Written out in bf16 or
fp16, the scores are held in that dtype (rounds_scores), which the kernels reproduce.
"""

from __future__ import annotations

import math
import operator
import re
import sys
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule, Node

from kernelwright.generate.expert.analysis import (
    _BINARY, _TRANSPOSES, _arg, _Graph, _is_number, _skip_identities, _swaps_last_two, _trace,
)
from kernelwright.generate.expert.patterns import Attention, Input, Unsupported

_SDPA = "scaled_dot_product_attention"
_PRODUCTS = ("matmul", "bmm")
# A masked score at or below this contributes exp(score - max) == 0 in fp32 next to any unmasked score,
# exactly as -inf does (causal rows always keep key 0, so no row is masked whole).
_MASKED = -1e4
_MAX_MASK = 1 << 26  # elements of a mask evaluated on the CPU (8192 x 8192)
_MAX_MODEL_BYTES = 1 << 30  # a task's tensors rebuilt on the CPU to read a mask buffer


def match_attention(g: _Graph, out: Node, dtype: str) -> Attention | None:
    """The output as Attention; None when it is not attention at all (softmax(...) @ v or sdpa), so other
    matchers run; Unsupported (one line) when it is attention in a form the expert does not write."""
    node = _skip_identities(g, out)
    name, args, kwargs = g.call(node) if g.name(node) else ("", [], {})
    if name == _SDPA:
        return _sdpa(g, node, args, kwargs, dtype)
    if name not in _PRODUCTS or len(args) != 2:
        return None
    softmax = _skip_identities(g, args[0])
    if g.name(softmax) != "softmax":
        return None
    _, s_args, s_kwargs = g.call(softmax)
    if not _after_product(g, s_args[0]):
        return None  # softmax(x) @ w: one product after a softmax, not attention
    dim = _arg(s_args, s_kwargs, 1, "dim")
    rank = len(g.shape(softmax))
    if not (isinstance(dim, int) and dim % rank == rank - 1):
        raise g.refuse(softmax, f"attention with a softmax over dim {dim}; the expert normalizes over the keys "
                                "(the last dim)")
    static = _Static(g)
    factors: list[tuple[float, bool]] = []
    scores, causal = _scores(g, static, s_args[0], factors)
    q_arg, kt_arg = g.call(scores)[1][:2]
    q, _ = _operand(g, static, q_arg, factors, "q")
    k, k_transposed = _operand(g, static, kt_arg, factors, "k")
    v, v_transposed = _operand(g, static, args[1], None, "v")
    if not k_transposed or v_transposed:
        raise g.refuse(scores, "attention whose scores are not q @ k.transpose(-2, -1), or whose values are "
                               "transposed; the expert reads q, k and v as [..., seq, head_dim]")
    rounds = scores.meta["tensor_meta"].dtype in (torch.bfloat16, torch.float16)
    return _pattern(g, node, q, k, v, causal, factors, dtype, rounds_scores=rounds)


def _after_product(g: _Graph, arg: Any) -> bool:
    """Whether a matrix product is among the nodes `arg` is computed from."""
    todo, seen = [arg] if isinstance(arg, Node) else [], set()
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            if g.name(node) in _PRODUCTS:
                return True
            todo.extend(node.all_input_nodes)
    return False


def _sdpa(g: _Graph, node: Node, args: list[Any], kwargs: dict[str, Any], dtype: str) -> Attention:
    if _arg(args, kwargs, 4, "dropout_p", 0.0) != 0:
        raise g.refuse(node, f"{_SDPA} with dropout_p; the expert writes attention without dropout")
    static = _Static(g)
    factors: list[tuple[float, bool]] = []
    scale = _arg(args, kwargs, 6, "scale")
    if scale is None:  # sdpa's default: 1/sqrt of q's head dim, at run time
        factors.append((g.shape(_arg(args, kwargs, 0, "query"))[-1] ** -0.5, True))
    else:
        factors.append(static.number(scale, node, f"{_SDPA}'s scale"))
    operands = []
    for i, key in enumerate(("query", "key", "value")):
        leaf, transposed = _operand(g, static, _arg(args, kwargs, i, key), factors if i < 2 else None, key)
        if transposed:
            raise g.refuse(node, f"{_SDPA} of a transposed {key}; the expert reads [..., seq, head_dim]")
        operands.append(leaf)
    causal = bool(_arg(args, kwargs, 5, "is_causal", False))
    mask = _arg(args, kwargs, 3, "attn_mask")
    if mask is not None:
        if causal:
            raise g.refuse(node, f"{_SDPA} with both attn_mask and is_causal")
        shape = g.shape(node)[:-1] + (g.shape(operands[1].node)[-2],)
        mask = static.tensor(mask, node, "attn_mask")  # a boolean one is True where a key is kept
        causal = _is_causal(~mask, None, shape) if mask.dtype == torch.bool else _is_causal(None, mask, shape)
        if not causal:
            raise g.refuse(node, f"{_SDPA} with an attn_mask that is not causal; the expert writes causal "
                                 "masks only")
    if not _arg(args, kwargs, 7, "enable_gqa", False) and operands[0].heads != operands[1].heads:
        raise g.refuse(node, f"{_SDPA} of q with {operands[0].heads} heads and k with {operands[1].heads}: "
                             "grouped heads need enable_gqa")
    return _pattern(g, node, *operands, causal, factors, dtype, grouped=True)


class _Leaf:
    """An operand traced back to its forward input: the placeholder, and how many times each of its
    heads is repeated on the way (1: not at all)."""

    def __init__(self, g: _Graph, node: Node, repeat: int) -> None:
        self.node, self.repeat = node, repeat
        self.input = Input(g.inputs.index(node))
        self.shape = g.shape(node)
        self.heads = self.shape[-3] * repeat if len(self.shape) >= 3 else 1


def _scores(g: _Graph, static: _Static, arg: Any, factors: list[tuple[float, bool]]) -> tuple[Node, bool]:
    """From the softmax's input back to q @ k^T: (that product, causal?), numbers collected in `factors`."""
    causal = False
    while True:
        node = _skip_identities(g, arg)
        name, args, kwargs = g.call(node) if g.name(node) else ("", [], {})
        name = _BINARY.get(name, name)
        if name in _PRODUCTS:
            return node, causal
        mask: tuple[torch.Tensor | None, torch.Tensor | None] | None = None  # (True above, additive)
        if name in ("mul", "div") and len(args) == 2 and not all(g.is_tensor(a) for a in args):
            arg, number = (args[0], args[1]) if g.is_tensor(args[0]) else (args[1], args[0])
            if name == "div" and arg is args[1]:
                raise g.refuse(node, "attention scores divided into a number; the expert scales them")
            value, shaped = static.number(number, node, "the scores' scale")
            factors.append((1.0 / value if name == "div" else value, shaped))
            continue
        if name == "add" and len(args) == 2 and all(g.is_tensor(a) for a in args) and kwargs.get("alpha", 1) == 1:
            arg, other = (args[1], args[0]) if static.is_static(args[0]) else (args[0], args[1])
            mask = (None, static.tensor(other, node, "the additive mask"))
        elif name == "masked_fill":
            arg = args[0]
            _fill(g, static, _arg(args, kwargs, 2, "value"), node)
            mask = (static.tensor(_arg(args, kwargs, 1, "mask"), node, "masked_fill's mask"), None)
        elif name == "where" and len(args) == 3:
            arg = args[1]
            _fill(g, static, args[2], node)
            mask = (~static.tensor(args[0], node, "where's condition").bool(), None)
        if mask is None or not g.is_tensor(arg):
            raise g.refuse(node, f"attention scores through {name or node.op}; the expert writes q @ k^T scaled "
                                 "by numbers, with at most one causal mask (+ mask, masked_fill, where)")
        if causal or not _is_causal(*mask, g.shape(node)):
            raise g.refuse(node, f"attention with a {'second ' if causal else ''}mask ({name}) that is not one "
                                 "causal mask; the expert writes key j <= query i, or no mask")
        causal = True


def _fill(g: _Graph, static: _Static, value: Any, node: Node) -> None:
    number, _ = static.number(value, node, "the masked scores' value")
    if not number <= _MASKED:
        raise g.refuse(node, f"masked scores set to {number}; the expert masks with -inf (or below {_MASKED})")


def _is_causal(above: torch.Tensor | None, additive: torch.Tensor | None, shape: tuple[int, ...]) -> bool:
    """Whether a mask over the scores (of `shape`) drops exactly the keys after each query: `above` True
    there (a boolean mask), or `additive` 0 on and below the diagonal and masked above."""
    mask = above if above is not None else additive
    if mask.dim() > len(shape) or any(n != 1 for n in mask.shape[:-2]) or tuple(mask.shape[-2:]) != shape[-2:]:
        return False  # only one (seq_q, seq_k) mask for every batch and head
    mask = mask.reshape(shape[-2:])
    after = torch.ones(shape[-2:], dtype=torch.bool).triu(1)
    if above is not None:
        return torch.equal(mask.bool(), after)
    return bool((mask[~after] == 0).all() and (mask[after] <= _MASKED).all())


def _operand(g: _Graph, static: _Static, arg: Any, factors: list[tuple[float, bool]] | None,
             what: str) -> tuple[_Leaf, bool]:
    """A matrix operand back to its forward input: (the input and its head repeat, transposed since?).
    Numbers multiplying it go to `factors` (None: none allowed)."""
    transposed, repeat = False, 1
    while True:
        node = _skip_identities(g, arg)
        if isinstance(node, Node) and node.op == "placeholder":
            if not (g.is_tensor(node) and node.meta["tensor_meta"].dtype.is_floating_point):
                raise Unsupported(f"forward argument {node.target} is not a floating tensor; the expert reads floats")
            return _Leaf(g, node, repeat), transposed
        if not (g.is_tensor(node) and node.op.startswith("call")):
            raise g.refuse(node if isinstance(node, Node) else None,
                           f"attention's {what} is not a forward input; the expert reads q, k and v as inputs")
        name, args, kwargs = g.call(node)
        name = _BINARY.get(name, name)
        if name in _TRANSPOSES and _swaps_last_two(g, name, args, kwargs):
            arg, transposed = args[0], not transposed
        elif factors is not None and name in ("mul", "div") and len(args) == 2 and not all(
                g.is_tensor(a) for a in args) and (name == "mul" or g.is_tensor(args[0])):
            arg, number = (args[0], args[1]) if g.is_tensor(args[0]) else (args[1], args[0])
            value, shaped = static.number(number, node, f"{what}'s scale")
            factors.append((1.0 / value if name == "div" else value, shaped))
        elif repeat == 1 and (found := _repeat(g, static, node, name, args, kwargs)) is not None:
            arg, repeat = found
        else:
            raise g.refuse(node, f"attention's {what} computed by {name}; the expert reads q, k and v as forward "
                                 "inputs (transposed, scaled by numbers, or k and v repeated over heads)")


def _repeat(g: _Graph, static: _Static, node: Node, name: str, args: list[Any],
            kwargs: dict[str, Any]) -> tuple[Node, int] | None:
    """(the tensor, r) when `node` repeats each head of a [..., heads, seq, dim] tensor r times in place
    (head h of the result is head h // r): repeat_interleave over the heads, or Llama's repeat_kv,
    x[:, :, None].expand(b, h, r, s, d).reshape(b, h * r, s, d)."""
    shape = g.shape(node)
    if len(shape) < 3:
        return None
    if name == "repeat_interleave":
        source = _arg(args, kwargs, 0, "input")
        dim, _ = static.number(_arg(args, kwargs, 2, "dim"), node, "repeat_interleave's dim")
        repeats, _ = static.number(_arg(args, kwargs, 1, "repeats"), node, "repeat_interleave's repeats")
        if g.is_tensor(source) and int(dim) % len(shape) == len(shape) - 3 and repeats == int(repeats) >= 1:
            return source, int(repeats)
        return None
    if name not in ("reshape", "view") or g.name(expand := args[0]) != "expand":
        return None
    unsqueezed = g.call(expand)[1][0]
    if not (g.is_tensor(unsqueezed) and _inserts_dims(g, unsqueezed)):
        return None
    source = g.call(unsqueezed)[1][0]
    inner, grouped, expanded = g.shape(source), g.shape(unsqueezed), g.shape(expand)
    heads, r = inner[-3], expanded[-3] if len(expanded) == len(inner) + 1 else 0
    lead = inner[:-3]
    if (grouped == (*lead, heads, 1, *inner[-2:]) and expanded == (*lead, heads, r, *inner[-2:])
            and shape == (*lead, heads * r, *inner[-2:])):
        return source, r
    return None


def _inserts_dims(g: _Graph, node: Node) -> bool:
    """Whether the node only adds size-1 dims to its input: unsqueeze, or indexing by full slices and None."""
    name, args, _ = g.call(node)
    if name == "unsqueeze":
        return True
    if name != "getitem" or not isinstance(args[1], tuple):
        return False
    return all(i is None or i is Ellipsis or i == slice(None) for i in args[1])


def _pattern(g: _Graph, node: Node, q: _Leaf, k: _Leaf, v: _Leaf, causal: bool,
             factors: list[tuple[float, bool]], dtype: str, grouped: bool = False,
             rounds_scores: bool = False) -> Attention:
    """The pattern, once the shapes agree: q [*lead, H, Sq, D], k and v [*lead, Hkv, Sk, D]."""
    qs, ks, vs = q.shape, k.shape, v.shape
    if len(qs) < 3 or not len(qs) == len(ks) == len(vs):
        raise g.refuse(node, f"attention of q {qs}, k {ks}, v {vs}; the expert reads [..., heads, seq, head_dim] "
                             "tensors of one rank (at least 3)")
    heads, kv_heads = qs[-3], ks[-3]
    if k.repeat != v.repeat or ks != vs:
        raise g.refuse(node, f"attention with k {ks} and v {vs} repeated {k.repeat} and {v.repeat} times; "
                             "the expert reads k and v of one shape, grouped alike")
    # Heads repeated to the query heads' number, or a single kv head that matmul broadcasts over them, or
    # sdpa grouping them itself (enable_gqa): query head h reads kv head h // (heads // kv_heads) in each.
    if heads % (kv_heads * k.repeat) or not (kv_heads * k.repeat == heads or kv_heads == 1 or grouped):
        raise g.refuse(node, f"attention of {heads} query heads over {kv_heads} kv heads repeated {k.repeat} "
                             "times; the expert groups whole query heads per kv head")
    if qs[:-3] != ks[:-3] or qs[-1] != ks[-1]:
        raise g.refuse(node, f"attention of q {qs} and k {ks}: batch dims or head dims differ")
    if g.shape(node) != qs:
        raise g.refuse(node, f"attention giving {g.shape(node)} from q {qs}; the expert writes out like q")
    head_dim = qs[-1]
    scale = math.prod(f for f, _ in factors)
    if not (math.isfinite(scale) and scale > 0):
        raise g.refuse(node, f"attention with scale {scale}; the expert writes a positive scale")
    if any(shaped for _, shaped in factors):
        if not math.isclose(scale, head_dim ** -0.5, rel_tol=1e-9):
            raise g.refuse(node, f"attention scaled by {scale:g}, computed from the shapes; the expert computes "
                                 "head_dim ** -0.5 from them, or takes a number")
        scale = None
    shape = (math.prod(qs[:-3]), heads, qs[-2], ks[-2], head_dim)
    return Attention(q.input, k.input, v.input, causal, scale, shape, dtype, kv_heads, rounds_scores)


class _Static:
    """Values the graph computes without reading the inputs' values: numbers from shapes, masks built in
    forward or held as buffers. Computed on the CPU with the task's own ops, at the traced shapes."""

    def __init__(self, g: _Graph) -> None:
        self.g = g
        self.values: dict[Node, Any] = {}
        self.shaped: set[Node] = set()  # nodes whose value depends on a tensor's shape
        self.cpu: GraphModule | None = None  # the task's module traced on the CPU, once needed

    def number(self, arg: Any, user: Node, what: str) -> tuple[float, bool]:
        """(the value, read from shapes?) of a number, or Unsupported."""
        value = self.value(arg, user, what)
        if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
            value = value.item()
        if not _is_number(value):
            raise self.g.refuse(user, f"{what} is a {type(value).__name__}; the expert takes a number")
        return float(value), isinstance(arg, Node) and arg in self.shaped

    def tensor(self, arg: Any, user: Node, what: str) -> torch.Tensor:
        value = self.value(arg, user, what)
        if not isinstance(value, torch.Tensor):
            raise self.g.refuse(user, f"{what} is a {type(value).__name__}, not a tensor")
        return value

    def is_static(self, arg: Any) -> bool:
        """Whether the value reads no input (it is computed here if so)."""
        try:
            self._value(arg)
        except _Dynamic:
            return False
        except Exception:  # static, but failing: `value` says why when asked
            return True
        return True

    def value(self, arg: Any, user: Node, what: str) -> Any:
        try:
            return self._value(arg)
        except _Dynamic as e:
            raise self.g.refuse(user, f"{what} depends on {e}; the expert reads masks and scales that "
                                      "shapes and buffers give") from None
        except Unsupported:
            raise
        except Exception as e:  # the task's op failed on the CPU
            raise self.g.refuse(user, f"{what} cannot be computed here ({type(e).__name__}: {e})") from None

    def _value(self, arg: Any) -> Any:
        if isinstance(arg, (tuple, list)):
            return type(arg)(self._value(a) for a in arg)
        if isinstance(arg, dict):
            return {k: self._value(a) for k, a in arg.items()}
        if isinstance(arg, slice):
            return slice(self._value(arg.start), self._value(arg.stop), self._value(arg.step))
        if not isinstance(arg, Node):
            return arg
        if arg not in self.values:
            self.values[arg] = self._compute(arg)
            if any(n in self.shaped for n in arg.all_input_nodes):
                self.shaped.add(arg)
        return self.values[arg]

    def _compute(self, node: Node) -> Any:
        g = self.g
        if node.op == "placeholder":
            raise _Dynamic(f"the input {node.target}")
        if node.op == "get_attr":
            return self._buffer(node.target)
        if node.op == "call_module":
            raise _Dynamic(f"the module {node.target}")
        name, args, kwargs = g.call(node)
        if g.is_tensor(args[0] if args else None) and (name in (".shape", ".ndim", ".dtype", ".device")
                                                       or name in ("size", "dim")):
            # What a tensor's metadata says, without computing the tensor.
            meta = args[0].meta["tensor_meta"]
            if name in (".dtype", ".device"):
                return meta.dtype if name == ".dtype" else torch.device("cpu")
            self.shaped.add(node)
            shape = torch.Size(meta.shape)
            if name in (".ndim", "dim"):
                return len(shape)
            return shape if name == ".shape" or len(args) + len(kwargs) == 1 else shape[
                self._value(_arg(args, kwargs, 1, "dim"))]
        # The arguments first: a value that reads the inputs stops there, before anything is computed.
        args, kwargs = self._value(list(node.args)), self._value(dict(node.kwargs))
        if g.is_tensor(node) and math.prod(g.shape(node)) > _MAX_MASK:
            raise g.refuse(node, f"a mask of shape {g.shape(node)}, too large to check here")
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return node.target(*args, **kwargs)

    def _buffer(self, target: str) -> torch.Tensor:
        """A tensor the graph holds (a parameter, a buffer, or a constant torch.fx computed from them while
        tracing): the traced module's, or, when that was built on the meta device (shapes only), the
        task's Model built again and traced again on the CPU."""
        tensor = _attribute(self.g.gm, target)
        if not tensor.is_meta:
            return tensor.detach()
        if self.cpu is None:
            self.cpu = _traced_on_cpu(self.g)
        return _attribute(self.cpu, target).detach().to(tensor.dtype)


class _Dynamic(Exception):
    """A value that depends on the forward's inputs (or a module's computation): not static."""


def _attribute(module: nn.Module, target: str) -> torch.Tensor:
    tensor = operator.attrgetter(target)(module)
    if not isinstance(tensor, torch.Tensor):
        raise Unsupported(f"attribute {target} of the module is not a tensor")
    return tensor


def _traced_on_cpu(g: _Graph) -> GraphModule:
    """The task's Model built on the CPU and traced again (its tensors and torch.fx's constants then hold
    values), from the task module the analysis loaded, found by the file the traced code came from."""
    size = sum(t.numel() * t.element_size() for t in g.tensors.values())
    if size > _MAX_MODEL_BYTES:
        raise Unsupported(f"the task's mask is read from a Model of {size / 2**30:.1f} GiB; the expert builds "
                          "Models up to 1 GiB on the CPU to read it")
    traces = [n.meta.get("stack_trace") or "" for n in g.gm.graph.nodes]
    files = {m[1] for t in traces if (m := re.search(r'File "([^"]+)", line \d+, in forward', t))}
    modules = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) in files
               and hasattr(m, "Model") and hasattr(m, "get_init_inputs")]
    if len(modules) != 1:
        raise Unsupported("the task's mask is read from the Model's tensors, and its module cannot be found to "
                          "build it on the CPU")
    with torch.device("cpu"):
        model = modules[0].Model(*modules[0].get_init_inputs()).eval()
    return _trace(model, modules[0])
