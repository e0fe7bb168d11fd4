"""The analysis: a task's `Model.forward` as one Pattern (patterns.py), or Unsupported naming the op.

`analyze` runs the task's code in a spawned process, never in the caller's.
There the module is built on the meta device (shapes without memory or
compute), traced with torch.fx, its shapes propagated, and the graph matched:
elementwise ops only -> Pointwise; one reduction or softmax over the last dim
-> RowReduce (a sum, mean, max or min over middle dims -> ColumnReduce);
LayerNorm / RMSNorm (module, functional or written out), GroupNorm -> Norm;
one matrix product (nn.Linear, F.linear, matmul, @, mm, bmm, addmm) -> Matmul;
one 2-D convolution with zero padding (nn.Conv2d, F.conv2d) -> Conv.
cumsum / cumprod over the last dim -> Scan (flip(scan(flip(x))) is a reverse
scan, scan(cat([identity column, x]))[..., :-1] an exclusive one); F.cross_entropy /
nn.CrossEntropyLoss with class-index targets -> CrossEntropy; scaled dot-product
attention (sdpa, or softmax(q @ k^T) @ v written out) -> Attention (analysis_attention.py);
F.kl_div / nn.KLDivLoss of log_softmax and softmax -> KLDivergence (analysis_kl.py).
Several outputs: products of one input, each viewed -> Projections; elementwise
ones with rotate_half (cat(-x[..., h:], x[..., :h], -1)) -> Rotary (analysis_fused.py).
Several matrix products (and norms) in sequence, an MLP block -> Chain of such patterns (analysis_chain.py).
Elementwise ops before the reduction or norm form its prologue, those after it
(or after the matrix product) its epilogue. Dtype casts (.to, .float) are
skipped: templates compute in fp32.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import io
import math
import multiprocessing
import operator
import re
import sys
import textwrap
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule, Node, Tracer
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from kernelwright import pysource
from kernelwright.evaluate.correctness import TOLERANCES, tolerance_for
from kernelwright.evaluate.inputs import torch_dtype, variant_globals
from kernelwright.evaluate.process import sigint_blocked
from kernelwright.generate.expert.patterns import (
    MAX_BROADCAST_RANK, NORMALIZATIONS, Analysis, Call, Const, Expr, Input, Matmul, Norm, Pattern, Pointwise, RowReduce, Unsupported,
    Value, Weight, leaves,
)
from kernelwright.generate.expert.patterns import LOSS_REDUCTIONS, CrossEntropy, Scan
from kernelwright.generate.expert.patterns import Conv
from kernelwright.generate.expert.patterns import COLUMN_REDUCTIONS, ColumnReduce
from kernelwright.task import Task

_ANALYSES: dict[str, Analysis | str] = {}  # task.id -> its Analysis, or why it is Unsupported
# A spawned process with this module (and torch) imported, waiting for the next task: starting one takes
# seconds, so once a second task comes (a bench) the next analysis's process is started as one finishes.
_spare: ProcessPoolExecutor | None = None


def analyze(task: Task) -> Analysis:
    """The task as the expert sees it; Unsupported (one line) when no pattern fits. Cached per task id."""
    global _spare
    if task.id not in _ANALYSES:
        # A fresh spawned process per task: the task's code, and whatever state it leaves, never touches ours.
        pool, _spare = _spare or _new_process(), None
        with pool:
            # The child starts with Ctrl-C blocked (it inherits the mask): a Ctrl-C stops the run in this
            # process, not the analysis halfway through its imports (which read as a generator error).
            with sigint_blocked():
                future = pool.submit(analyze_in_process, str(task.path), task.meta.to_dict())
            try:
                _ANALYSES[task.id] = future.result()
            except Unsupported as e:
                _ANALYSES[task.id] = str(e)
        if len(_ANALYSES) > 1:
            _spare = _new_process()
            with sigint_blocked():
                _spare.submit(_imported)
    result = _ANALYSES[task.id]
    if isinstance(result, str):
        raise Unsupported(result)
    return result


def release() -> None:
    """Stop the spare process. A multiprocessing child (a bench lane) must call this before it returns: its
    exit waits for its own children before the executors' exit hooks would stop them."""
    global _spare
    if _spare is not None:
        _spare.shutdown(wait=True, cancel_futures=True)
        _spare = None


def _new_process() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def _imported() -> None:
    """Nothing: sent to a spare so that it imports this module (and torch) before it is needed."""


def analyze_in_process(path: str, meta: dict[str, Any]) -> Analysis:
    """`analyze` without the subprocess: imports the task file and runs its code here (on the meta device)."""
    source = Path(path).read_text()
    tree = pysource.parse(source)
    methods = _model_methods(tree)
    # Traced values are baked in as constants: a forward reading a shape global would be right for one variant only.
    varying = _free_names(methods["forward"]) & {name for v in meta.get("shape_variants") or [] for name in v}
    if varying:
        raise Unsupported(f"Model.forward reads {', '.join(sorted(varying))}, which the shape variants change")
    module = _load(path)
    graph = _Graph(_traced(module, meta))
    dtype = meta.get("dtype") or graph.dtype()
    if dtype not in ("float32", "bfloat16", "float16"):
        raise Unsupported(f"the task computes in {dtype}; the expert writes float32, bfloat16 and float16")
    pattern = graph.pattern(dtype)
    # PyTorch runs fp32 convolutions on TF32 tensor cores by default (cudnn.allow_tf32), and the evaluator
    # admits the reference's own arithmetic: so may the candidate.
    reference_units = {"tf32"} if type(pattern).__name__ in ("Conv", "PatchEmbed") else set()
    return Analysis(
        pattern=pattern,
        forward_args=tuple(inspect.signature(module.Model.forward).parameters)[1:],
        init_source=_init_source(source, tree, methods.get("__init__")),
        imports="\n".join(ast.get_source_segment(source, node) or "" for node in tree.body
                          if isinstance(node, (ast.Import, ast.ImportFrom))),
        outputs_fp32=dtype in ("bfloat16", "float16"),
        precision=_admitted_precision(dtype, meta, reference_units),
    )


def _admitted_precision(dtype: str, meta: dict[str, Any], reference_units: set[str] | None = None) -> str:
    """The lowest precision whose tolerance the task's own (its precision, dtype, explicit atol/rtol and the
    reference's own arithmetic) covers."""
    tol = tolerance_for(dtype, meta.get("precision"), frozenset(reference_units or ()), meta.get("atol"),
                        meta.get("rtol"))
    covered = [p for p, (rtol, atol) in TOLERANCES.items() if rtol <= tol.rtol and atol <= tol.atol]
    return covered[-1] if covered else "fp32"  # TOLERANCES runs from most to least precise


# -- running the task: import, build on the meta device, trace, propagate shapes ----------------------

def _load(path: str) -> ModuleType:
    name = f"_kernelwright_task_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # some task code (dataclasses, pickling) looks its module up there
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise Unsupported(f"{path}: the task fails to import ({type(e).__name__}: {_first_line(e)})") from None
    return module


def _traced(module: ModuleType, meta: dict[str, Any]) -> GraphModule:
    """The forward's graph with each node's shape: on the meta device, else on the CPU at the smallest variant."""
    dtype = torch_dtype(meta.get("dtype"))
    attempts = [("meta", {})] + [("cpu", variant) for variant in (meta.get("shape_variants") or [])[-1:]]
    for device, variant in attempts:
        try:
            with variant_globals(module, variant), torch.device(device):
                model = module.Model(*module.get_init_inputs()).eval()
                inputs = module.get_inputs()
            if dtype is not None:
                model = model.to(dtype)
                inputs = [x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
            traced = _trace(model, module)
            with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback it raises again
                ShapeProp(traced).propagate(*inputs)
            return traced
        except Unsupported:
            raise
        except Exception as e:  # say, an op without a meta kernel: the CPU attempt comes next
            error = e.__cause__ or e  # ShapeProp's own error names the node, its cause the problem
    raise Unsupported(f"the task's Model or get_inputs fails ({type(error).__name__}: {_first_line(error)})")


def _trace(model: nn.Module, module: ModuleType) -> GraphModule:
    tracer = Tracer()
    tracer.record_stack_traces = True  # each node's task line, for Unsupported's message
    try:
        graph = tracer.trace(model)
    except Exception as e:  # Python that needs values: branching on a tensor, iterating a proxy
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == module.__file__]
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} `{frames[-1].line}`" if frames else ""
        raise Unsupported(f"torch.fx cannot trace Model.forward{where}: {_first_line(e)}") from None
    return GraphModule(tracer.root, graph)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _model_methods(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    model = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    methods = {n.name: n for n in getattr(model, "body", []) if isinstance(n, ast.FunctionDef)}
    if "forward" not in methods:
        raise Unsupported("Model is not a class statement with a forward method")
    return methods


def _free_names(function: ast.FunctionDef) -> set[str]:
    """The names a function reads without binding them: globals and builtins."""
    names = [n for n in ast.walk(function) if isinstance(n, ast.Name)]
    bound = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
    return {n.id for n in names if isinstance(n.ctx, ast.Load)} - bound - {
        n.id for n in names if not isinstance(n.ctx, ast.Load)}


def _module_globals(tree: ast.Module) -> set[str]:
    """The names a module binds other than by import: assignments of any form (`a, b = ...`, `x += 1`, a for
    loop's target, `with ... as x`), functions and classes, also inside module-level if/for/with/try."""
    names: set[str] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)  # its body is its own scope
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif not isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            todo.extend(ast.iter_child_nodes(node))
    return names


def _init_source(source: str, tree: ast.Module, init: ast.FunctionDef | None) -> str:
    """Model.__init__ as ModelNew's: `super(Model, self)` becomes `super()`; it may read imports, no other globals."""
    if init is None:  # nn.Module's own
        return "    def __init__(self):\n        super().__init__()\n"
    start = init.decorator_list[0].lineno if init.decorator_list else init.lineno
    text = textwrap.dedent("\n".join(source.splitlines()[start - 1:init.end_lineno]))
    text = re.sub(r"super\(\s*Model\s*,\s*self\s*\)", "super()", text)
    # The candidate file holds the task's imports, not its other globals (Model, constants, helpers).
    used = _free_names(pysource.parse(text).body[0]) & _module_globals(tree)
    if used:
        raise Unsupported(f"Model.__init__ reads {', '.join(sorted(used))} from the task module; ModelNew cannot")
    return textwrap.indent(text, "    ") + "\n"


# -- the graph: each call in one form, whichever way the task wrote it (torch.f, F.f, Tensor.f, x + y, nn.F) --

_UNARY = {op: op for op in ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "square", "sigmoid",
                            "tanh", "relu", "silu", "erf", "sin", "cos")} | {"negative": "neg", "absolute": "abs"}
_BINARY = {op: op for op in ("add", "sub", "mul", "div", "maximum", "minimum")} | {
    "truediv": "div", "true_divide": "div", "multiply": "mul", "subtract": "sub", "max": "maximum", "min": "minimum"}
_IDENTITY = ("to", "float", "half", "bfloat16", "type_as", "contiguous", "clone", "detach", "identity")
_BOUNDED = ("clamp", "clip", "clamp_min", "clamp_max", "hardtanh", "relu6")
_ELEMENTWISE = {*_UNARY, *_BINARY, *_IDENTITY, *_BOUNDED, "pow", "gelu", "softplus", "leaky_relu", "batch_norm"}
# op name -> RowReduce kind. max and min with a dim return (values, indices), amax and amin the values.
_REDUCE = {"sum": "sum", "mean": "mean", "amax": "max", "amin": "min", "max": "max", "min": "min",
           "logsumexp": "logsumexp", "argmax": "argmax", "argmin": "argmin", "softmax": "softmax",
           "log_softmax": "log_softmax"}
_MATMULS = ("linear", "matmul", "mm", "bmm", "addmm")
_NORMS = ("layer_norm", "rms_norm", "instance_norm", "group_norm")
# Views that swap a matrix operand's last two dims (transpose and friends are checked for which dims).
_TRANSPOSES = ("t", ".T", ".mT", "transpose", "swapaxes", "swapdims", "permute")


def _module_call(m: nn.Module, name: str) -> tuple[str, list[Any]]:
    """An nn module as the functional call it makes: (op name, arguments after the input)."""
    def param(attr: str) -> Weight | None:
        return Weight(f"{name}.{attr}") if getattr(m, attr, None) is not None else None

    table: list[tuple[Any, Any]] = [
        (nn.ReLU, lambda: ("relu", [])), (nn.SiLU, lambda: ("silu", [])), (nn.Sigmoid, lambda: ("sigmoid", [])),
        (nn.Tanh, lambda: ("tanh", [])), (nn.GELU, lambda: ("gelu", [m.approximate])),
        (nn.LeakyReLU, lambda: ("leaky_relu", [m.negative_slope])),
        (nn.Hardtanh, lambda: ("hardtanh", [m.min_val, m.max_val])),  # ReLU6 too
        (nn.Softplus, lambda: ("softplus", [m.beta, m.threshold])),
        (nn.Softmax, lambda: ("softmax", [m.dim])), (nn.LogSoftmax, lambda: ("log_softmax", [m.dim])),
        (nn.LayerNorm, lambda: ("layer_norm", [m.normalized_shape, param("weight"), param("bias"), m.eps])),
        (nn.RMSNorm, lambda: ("rms_norm", [m.normalized_shape, param("weight"), m.eps])),
        # Eval mode: batch norm is an affine map per channel by its running statistics (None without them).
        ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), lambda: ("batch_norm", [
            param("running_mean"), param("running_var"), param("weight"), param("bias"), m.eps])),
        ((nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d), lambda: ("instance_norm", [
            param("weight"), param("bias"), m.eps, m.track_running_stats])),
        (nn.GroupNorm, lambda: ("group_norm", [m.num_groups, param("weight"), param("bias"), m.eps])),
        (nn.Linear, lambda: ("linear", [param("weight"), param("bias")])),
        (nn.Conv2d, lambda: ("conv2d", [param("weight"), param("bias"), m.stride, m.padding, m.dilation, m.groups])),
        ((nn.Identity, nn.Dropout), lambda: ("identity", [])),  # the reference runs in eval mode
    ]
    return next((make() for kind, make in table if isinstance(m, kind)), (f"{type(m).__name__} ({name})", []))


def _refuse(node: Node | None, why: str) -> Unsupported:
    """Unsupported naming the task line the node comes from, where torch.fx recorded it."""
    trace = (node.meta.get("stack_trace") or "") if node is not None else ""
    found = re.match(r'\s*File "([^"]+)", line (\d+), in \w+\n\s*(.*)', trace)
    return Unsupported(why + (f" at {Path(found[1]).name}:{found[2]} `{found[3].strip()}`" if found else ""))


def _arg(args: list[Any], kwargs: dict[str, Any], i: int, key: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(key, default)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class _Graph:
    def __init__(self, gm: GraphModule) -> None:
        self.gm = gm
        self.inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
        self.tensors = dict(gm.named_parameters()) | dict(gm.named_buffers())

    def call(self, node: Node) -> tuple[str, list[Any], dict[str, Any]]:
        """(op name, args, kwargs) of a call node."""
        if node.op == "call_module":
            name, extra = _module_call(self.gm.get_submodule(node.target), node.target)
            return name, [node.args[0], *extra], {}
        if node.target is getattr:  # x.shape, x.dtype, torch.max(...).values
            return f".{node.args[1]}", list(node.args), {}
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", str(node.target))
        return name, list(node.args), dict(node.kwargs)

    def name(self, node: Any) -> str | None:
        return self.call(node)[0] if isinstance(node, Node) and node.op.startswith("call") else None

    def is_tensor(self, arg: Any) -> bool:
        return isinstance(arg, Node) and isinstance(arg.meta.get("tensor_meta"), TensorMetadata)

    def shape(self, node: Node) -> tuple[int, ...]:
        return tuple(node.meta["tensor_meta"].shape)

    def refuse(self, node: Node | None, why: str) -> Unsupported:
        return _refuse(node, why)

    def weight(self, node: Node) -> str:
        """The name of the parameter or buffer a get_attr node reads (a candidate's module has the same)."""
        if node.target not in self.tensors:
            raise self.refuse(node, f"tensor attribute {node.target} is not a parameter or buffer")
        # torch.fx runs what depends on no input while it traces (self.temp ** 2 of a buffer) and keeps the
        # result as a constant of its own, which the candidate's module would not have.
        if node.target.startswith("_tensor_constant"):
            raise self.refuse(node, "Model.forward computes a tensor from its parameters or buffers alone; the "
                                    "expert reads them as they are (compute it in __init__, or from the inputs)")
        return node.target

    def outputs(self) -> list[Node]:
        (out,) = [n.args[0] for n in self.gm.graph.nodes if n.op == "output"]
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if not outs or not all(self.is_tensor(o) for o in outs):
            raise Unsupported("Model.forward does not return a tensor (or a tuple of tensors)")
        return outs

    def output(self) -> Node:
        return self.outputs()[0]

    def dtype(self) -> str:
        """The output's dtype, or the first floating input's when the output is not floating (argmax)."""
        dtypes = [n.meta["tensor_meta"].dtype for n in [self.output(), *self.inputs] if self.is_tensor(n)]
        return str(next((d for d in dtypes if d.is_floating_point), dtypes[0])).removeprefix("torch.")

    def special(self, node: Node) -> bool:
        """A reduction or a norm: what a pattern is built around (at most one per task)."""
        name, args, kwargs = self.call(node) if node.op.startswith("call") else ("", [], {})
        if name in ("max", "min") and self.is_tensor(_arg(args, kwargs, 1, "other")):
            return False  # torch.max(a, b): the elementwise maximum
        return name in _REDUCE or name in _NORMS

    def what(self, node: Node) -> str:
        """An op as a message names it: `linear (fc1)` for a module, the function's name otherwise."""
        return f"{self.name(node)} ({node.target})" if node.op == "call_module" else str(self.name(node))

    def pattern(self, dtype: str) -> Pattern:
        outs = self.outputs()
        if len(outs) == 1:
            return self.pattern_of(outs[0], dtype)
        if len(outs) == 2:  # a norm may return its input too: (norm(h), h) or (h, norm(h))
            for main in (0, 1):
                try:
                    pattern = self.pattern_of(outs[main], dtype)
                    if isinstance(pattern, Norm) and _Exprs(self, pattern.shape).expr(outs[1 - main]) == pattern.prologue:
                        return replace(pattern, outputs=("value", "prologue") if main == 0 else ("prologue", "value"))
                except Unsupported:
                    pass
        from kernelwright.generate.expert.analysis_fused import several_outputs  # it imports this module

        if (several := several_outputs(self, outs, dtype)) is not None:
            return several
        raise Unsupported(f"Model.forward returns {len(outs)} outputs; the expert writes one, or a norm and its input, "
                          "several products of one input, or rotary embeddings")

    def pattern_of(self, out: Node, dtype: str) -> Pattern:
        """The pattern computing the output `out`."""
        live, todo = set(), [out]  # the nodes the output depends on
        while todo:
            node = todo.pop()
            if node not in live:
                live.add(node)
                todo.extend(node.all_input_nodes)
        if (scan_or_loss := _scan_or_loss(self, live, out, dtype)) is not None:
            return scan_or_loss
        # The distillation loss before the one-reduction rule: its two softmaxes and kl_div are one pattern.
        from kernelwright.generate.expert.analysis_kl import match_kl_div  # it imports this module

        if (kl := match_kl_div(self, live, out, dtype)) is not None:
            return kl
        # Attention before the one-matrix-product rule: its two products and softmax are one pattern.
        from kernelwright.generate.expert.analysis_attention import match_attention  # it imports this module

        if (attention := match_attention(self, out, dtype)) is not None:
            return attention
        specials = [n for n in self.gm.graph.nodes if n in live and self.special(n)]
        matmuls = [n for n in self.gm.graph.nodes if n in live and self.name(n) in _MATMULS]
        if len(matmuls) > 1 or matmuls and specials:  # several kernels in sequence: an MLP, a product and a norm
            from kernelwright.generate.expert.analysis_chain import match_chain  # it imports this module

            if (chain := match_chain(self, live, out, dtype)) is not None:
                return chain
        if len(matmuls) > 1:
            raise self.refuse(matmuls[1], f"a second matrix product, {self.what(matmuls[1])}; the expert writes "
                                          "one matrix product per kernel")
        if matmuls and specials:
            raise self.refuse(specials[0], f"{self.what(specials[0])} with a matrix product; the expert fuses "
                                           "elementwise ops into a matrix product, not reductions or norms")
        # ViT's patch embedding before the convolution rule: its conv2d, views and torch.cat are one pattern.
        from kernelwright.generate.expert.analysis_patch import match_patch_embed  # it imports this module

        if (patch := match_patch_embed(self, live, out, dtype)) is not None:
            return patch
        if (conv := _conv(self, live, out, dtype)) is not None:
            return conv
        if matmuls:
            return _matmul(self, matmuls[0], out, dtype)
        if not specials:
            return Pointwise(_Exprs(self, self.shape(out)).expr(out), self.shape(out), dtype)
        if len(specials) > 1:
            raise self.refuse(specials[1], f"a second reduction ({self.name(specials[1])}); the expert writes "
                                           "one reduction or norm per kernel")
        return _reduce_or_norm(self, specials[0], out, dtype)


# -- elementwise expressions --------------------------------------------------------------------------

class _Exprs:
    """Nodes as Expr trees: leaf layouts relative to `shape`, the `stop` nodes (a reduction's result) as Value()."""

    def __init__(self, graph: _Graph, shape: tuple[int, ...], stop: tuple[Node, ...] = (), row_dims: int = 1) -> None:
        self.g, self.shape, self.stop = graph, shape, stop
        self.row_dims = row_dims  # a "row" leaf spans this many trailing dims (a reduction's or a norm's)

    def expr(self, arg: Any, user: Node | None = None) -> Expr:
        if _is_number(arg):
            return Const(float(arg))
        if isinstance(arg, Weight):  # a module's parameter, named by _module_call
            return Weight(arg.name, self.layout(self.g.tensors[arg.name].shape, arg.name, user))
        if not isinstance(arg, Node):
            raise self.g.refuse(user, f"a {type(arg).__name__} operand of {self.g.name(user)}")
        if arg in self.stop:
            return Value()
        if arg.op == "placeholder":
            if not (self.g.is_tensor(arg) and arg.meta["tensor_meta"].dtype.is_floating_point):
                raise Unsupported(f"forward argument {arg.target} is not a floating tensor; the expert reads floats")
            return Input(self.g.inputs.index(arg), self.layout(self.g.shape(arg), arg.target, user))
        if arg.op == "get_attr":
            return Weight(self.g.weight(arg), self.layout(self.g.shape(arg), arg.target, user))
        if self.g.name(arg) == "unsqueeze":
            return self.unsqueezed(arg, user)
        return self.call(arg)

    def batch_norm(self, node: Node, x: Expr, args: list[Any]) -> Expr:
        """Eval-mode batch norm, (x - mean) / sqrt(var + eps) * weight + bias, with its per-channel vectors
        unsqueezed to [C, 1, ...] so that they broadcast over the dims after the channel."""
        mean, var, weight, bias, eps = args[1:]
        if mean is None or var is None:
            raise self.g.refuse(node, "batch norm without running statistics normalizes by the batch's; the expert "
                                      "writes the inference form")
        rank = len(self.g.shape(args[0]))
        if rank < 2:
            raise self.g.refuse(node, "batch norm of a tensor without a channel dim")

        def per_channel(w: Weight) -> Weight:
            dims = tuple(range(1, rank - 1))
            shape = (*self.g.tensors[w.name].shape, *([1] * len(dims)))
            return Weight(w.name, self.layout(shape, w.name, node), dims)

        y = Call("div", (Call("sub", (x, per_channel(mean))),
                         Call("sqrt", (Call("add", (per_channel(var), Const(float(eps)))),))))
        if weight is not None:
            y = Call("mul", (y, per_channel(weight)))
        return y if bias is None else Call("add", (y, per_channel(bias)))

    def unsqueezed(self, node: Node, user: Node | None) -> Input | Weight:
        """`x.unsqueeze(d)...` of a forward input or a parameter: the leaf, with the dims it gains, in order."""
        dims: list[int] = []
        base = node
        while self.g.name(base) == "unsqueeze":
            _, args, kwargs = self.g.call(base)
            rank = len(self.g.shape(args[0]))
            dim = _arg(args, kwargs, 1, "dim")
            dims.insert(0, dim if dim >= 0 else dim + rank + 1)
            base = args[0]
        if not (isinstance(base, Node) and base.op in ("placeholder", "get_attr")):
            raise self.g.refuse(node, "unsqueeze of a computed tensor; the expert unsqueezes inputs and parameters")
        # The leaf as if it had the unsqueezed shape: its layout is the view's, not its own.
        saved, self.shape = self.shape, self.g.shape(base)
        try:
            leaf = self.expr(base, user)
        finally:
            self.shape = saved
        return replace(leaf, layout=self.layout(self.g.shape(node), base.target, user), unsqueeze=tuple(dims))

    def layout(self, leaf: tuple[int, ...], name: str, user: Node | None) -> str:
        leaf, shape, k = tuple(leaf), self.shape, self.row_dims
        if leaf == shape:
            return "full"
        if math.prod(leaf) == 1:
            return "scalar"
        if len(shape) >= k and len(leaf) >= k and leaf[-k:] == shape[-k:] and math.prod(leaf) == math.prod(shape[-k:]):
            return "row"
        if len(leaf) <= len(shape) <= MAX_BROADCAST_RANK and all(
                a in (1, b) for a, b in zip(reversed(leaf), reversed(shape))):
            return "broadcast"
        raise self.g.refuse(user, f"{name} of shape {leaf} does not broadcast to {shape} in "
                                  f"{self.g.name(user) or 'the output'} (or has more than {MAX_BROADCAST_RANK} dims)")

    def call(self, node: Node) -> Expr:
        name, args, kwargs = self.g.call(node)

        def arg(i: int, key: str, default: Any = None) -> Any:
            return _arg(args, kwargs, i, key, default)

        if name not in _ELEMENTWISE:
            from kernelwright.generate.expert.analysis_fused import rotated_half  # it imports this module

            if (rotated := rotated_half(self.g, node)) is not None:
                return Call("rotate_half", (self.expr(rotated, node),))
            raise self.g.refuse(node, f"{name} is not an op the expert writes (elementwise ops, one reduction "
                                      "over the last dim, layer or RMS norm, one matrix product)")
        x = self.expr(args[0], node)
        if name in _IDENTITY:
            return x
        if name == "batch_norm":
            return self.batch_norm(node, x, args)
        if name in _UNARY:
            return Call(_UNARY[name], (x,))
        if name in _BINARY:  # max and min only get here with a tensor: elementwise
            if kwargs.get("alpha", 1) != 1 or kwargs.get("rounding_mode") is not None:
                raise self.g.refuse(node, f"{name} with alpha or rounding_mode; the expert writes plain {name}")
            return Call(_BINARY[name], (x, self.expr(arg(1, "other"), node)))
        if name == "pow":
            exponent = arg(1, "exponent")
            return Call("square", (x,)) if exponent == 2 else Call("pow", (x, self.expr(exponent, node)))
        if name == "gelu" and arg(1, "approximate", "none") in ("none", "tanh"):
            return Call("gelu" if arg(1, "approximate", "none") == "none" else "gelu_tanh", (x,))
        if name == "softplus" and (arg(1, "beta", 1), arg(2, "threshold", 20)) == (1, 20):
            return Call("softplus", (x,))
        if name == "leaky_relu" and _is_number(arg(1, "negative_slope", 0.01)):
            return Call("leaky_relu", (x, Const(float(arg(1, "negative_slope", 0.01)))))
        bounds = {"clamp": (arg(1, "min"), arg(2, "max")), "clip": (arg(1, "min"), arg(2, "max")),
                  "clamp_min": (arg(1, "min"), None), "clamp_max": (None, arg(1, "max")),
                  "hardtanh": (arg(1, "min_val", -1.0), arg(2, "max_val", 1.0)), "relu6": (0, 6)}.get(name)
        if bounds is not None and all(b is None or _is_number(b) for b in bounds):
            lo, hi = (-math.inf if bounds[0] is None else bounds[0]), (math.inf if bounds[1] is None else bounds[1])
            return Call("clamp", (x, Const(float(lo)), Const(float(hi))))
        raise self.g.refuse(node, f"{name} with these arguments (a tensor bound or slope, a non-default option) "
                                  "is not one the expert writes")


# -- reductions and norms ------------------------------------------------------------------------------

def _reduce_or_norm(g: _Graph, node: Node, out: Node, dtype: str) -> RowReduce | ColumnReduce | Norm:
    name, args, kwargs = g.call(node)
    shape = g.shape(args[0])
    if name == "group_norm":
        return _group_norm(g, node, out, dtype)
    k, inner = _reduced_dims(g, node, name, args, kwargs, shape)  # k adjacent dims reduced, `inner` dims after them
    # A "row" leaf spans the reduced dims, or for a column reduction the inner ones (one value per column).
    prologue = _Exprs(g, shape, row_dims=inner or k).expr(args[0], node)
    if name == "instance_norm":
        weight, bias, eps, running = args[1:]
        if weight is not None or bias is not None or running:
            raise g.refuse(node, "instance norm with an affine map or running statistics; the expert writes the "
                                 "plain form (affine=False, track_running_stats=False)")
        return Norm("layer", prologue, shape, dtype, float(eps), epilogue=_epilogue(g, (node,), out, shape, k),
                    dims=k)
    if name in ("layer_norm", "rms_norm"):
        weight, bias = _arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias") if name == "layer_norm" else None
        affine = [None if w is None else _Exprs(g, shape, row_dims=k).expr(w, node) for w in (weight, bias)]
        if any(w is not None and not (isinstance(w, Weight) and w.layout == "row") for w in affine):
            raise g.refuse(node, f"{name} with a weight or bias that is not a parameter over the normalized dims")
        eps = _arg(args, kwargs, 4, "eps", 1e-5) if name == "layer_norm" else _arg(args, kwargs, 3, "eps")
        if eps is None:  # RMSNorm's default: the input dtype's machine epsilon
            eps = torch.finfo(args[0].meta["tensor_meta"].dtype).eps
        return Norm(name.removesuffix("_norm"), prologue, shape, dtype, float(eps), *affine,
                    epilogue=_epilogue(g, (node,), out, shape, k), dims=k)

    kind, stop = _REDUCE[name], (node,)
    if name in ("max", "min"):  # (values, indices): the pattern's result is .values or [0]
        stop = tuple(node.users)
        if not all(u.target in (operator.getitem, getattr) and u.args[1] in (0, "values") for u in stop):
            raise g.refuse(node, f"torch.{name} with a dim returns (values, indices); the expert takes .values only")
    keepdim = bool(_arg(args, kwargs, 2, "keepdim", False)) and kind not in NORMALIZATIONS
    reduce: RowReduce | ColumnReduce
    if inner:
        reduce = ColumnReduce(kind, prologue, shape, dtype, k, inner, keepdim, _epilogue(g, stop, out, shape))
    else:
        reduce = RowReduce(kind, prologue, shape, dtype, keepdim, _epilogue(g, stop, out, shape), dims=k)
        if rms := _explicit_rms(reduce):
            return rms
    tensors = [leaf for leaf in leaves(reduce.epilogue or Value()) if leaf.layout != "scalar"]
    if kind not in NORMALIZATIONS and reduce.epilogue and (tensors or kind.startswith("arg")):
        # One value per row: its epilogue can transform it, not combine it with per-element tensors.
        raise g.refuse(out, f"the {name}'s result is combined with tensors (or its indices computed on); after a "
                            "reduction the expert's epilogue reads only the reduced value, numbers and scalars")
    return reduce


def _reduced_dims(g: _Graph, node: Node, name: str, args: list[Any], kwargs: dict[str, Any],
                  shape: tuple[int, ...]) -> tuple[int, int]:
    """(k, inner): a reduction or norm works over k adjacent dims followed by `inner` others (0: the last k).
    Refused unless the dims are adjacent, and the last ones but for sum, mean, max and min."""
    rank = len(shape)
    if name == "instance_norm":  # [N, C, *spatial]: each (n, c) over the spatial dims
        if rank < 3:
            raise g.refuse(node, "instance norm of a tensor without spatial dims")
        return rank - 2, 0
    if name in ("layer_norm", "rms_norm"):
        normalized = tuple(args[1]) if isinstance(args[1], (tuple, list)) else (args[1],)
        if not normalized or tuple(shape[-len(normalized):]) != normalized:
            raise g.refuse(node, f"{name} over {normalized} of {shape}; the expert normalizes trailing dims")
        return len(normalized), 0
    dim = _arg(args, kwargs, 1, "dim")
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if dims and all(isinstance(d, int) for d in dims) and rank:
        found = sorted({d % rank for d in dims})
        adjacent = len(found) == len(dims) and found == list(range(found[0], found[0] + len(found)))
        inner = rank - 1 - found[-1]
        # Several dims, or dims with others after them: the kinds whose partial results combine (not softmax).
        if adjacent and (len(dims) == 1 and inner == 0 or _REDUCE[name] in COLUMN_REDUCTIONS):
            return len(dims), inner
    what = "all dims" if dim is None else f"dim {dim}" if len(dims) == 1 else f"dims {dims}"
    raise g.refuse(node, f"{name} reduces over {what}; the expert reduces over adjacent dims: the last ones, or "
                         "any for sum, mean, max and min")


def _group_norm(g: _Graph, node: Node, out: Node, dtype: str) -> Norm:
    """nn.GroupNorm / F.group_norm over [N, C, *spatial]: each sample's channels in `groups` contiguous groups,
    each normalized alone, then scaled and shifted per channel."""
    _, args, kwargs = g.call(node)
    shape = g.shape(args[0])
    groups, eps = _arg(args, kwargs, 1, "num_groups"), _arg(args, kwargs, 4, "eps", 1e-5)
    if len(shape) < 2 or not isinstance(groups, int) or groups < 1 or shape[1] % groups:
        raise g.refuse(node, f"group norm of {shape} in {groups} groups; the expert splits [N, C, ...] into groups "
                             "of whole channels")
    k = len(shape) - 1
    affine = [_channel_vector(g, _arg(args, kwargs, i, key), node, len(shape))
              for i, key in ((2, "weight"), (3, "bias"))]
    return Norm("group", _Exprs(g, shape, row_dims=k).expr(args[0], node), shape, dtype, float(eps), *affine,
                epilogue=_epilogue(g, (node,), out, shape, k), dims=k, groups=groups)


def _channel_vector(g: _Graph, arg: Any, node: Node, rank: int) -> Weight | None:
    """A group norm's weight or bias: a [C] parameter, unsqueezed to [C, 1, ...] as batch norm's are."""
    if isinstance(arg, Node) and arg.op == "get_attr" and arg.target in g.tensors:
        arg = Weight(g.weight(arg))
    if arg is not None and not (isinstance(arg, Weight) and g.tensors[arg.name].dim() == 1):
        raise g.refuse(node, "group norm with a weight or bias that is not a parameter of one value per channel")
    return None if arg is None else Weight(arg.name, "broadcast", tuple(range(1, rank - 1)))


# -- matrix products -----------------------------------------------------------------------------------

def _matmul(g: _Graph, node: Node, out: Node, dtype: str) -> Matmul:
    """a @ b (+ bias) and the elementwise ops after it; b as the task holds it, transposed or not."""
    name, args, kwargs = g.call(node)
    added = None  # what the op itself adds to a @ b: linear's bias, addmm's input
    if name == "linear":  # x @ weight.T + bias; nn.Linear's weight arrives as a Weight from _module_call
        a_arg, b_arg, added = args[0], _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
    elif name == "addmm":
        if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
            raise g.refuse(node, "addmm with beta or alpha; the expert writes input + mat1 @ mat2")
        added, a_arg = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "mat1")
        b_arg = _arg(args, kwargs, 2, "mat2")
    else:
        a_arg, b_arg = args[0], args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
    a, a_shape, a_transposed = _operand(g, a_arg, node)
    b, b_shape, b_transposed = _operand(g, b_arg, node)
    b_transposed ^= name == "linear"  # the product reads weight.T
    if not isinstance(a, Input) or a_transposed:
        what = "a parameter" if isinstance(a, Weight) else "transposed"
        raise g.refuse(node, f"{name}'s left operand is {what}; the expert reads it as a forward input [..., M, K]")
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise g.refuse(node, f"{name} of a vector (shapes {a_shape} and {b_shape}); the expert multiplies matrices")
    if b_transposed:  # b's shape as the product reads it
        b_shape = (*b_shape[:-2], b_shape[-1], b_shape[-2])
    batched = len(b_shape) > 2
    if batched and a_shape[:-2] != b_shape[:-2]:
        raise g.refuse(node, f"{name} broadcasts batch dims ({a_shape} @ {b_shape}); the expert multiplies equal "
                             "batches, or any batch by one matrix")
    shape = g.shape(node)
    if a_shape[-1] != b_shape[-2] or shape != a_shape[:-1] + b_shape[-1:]:
        raise g.refuse(node, f"{name} of {a_shape} and {b_shape} giving {shape} is not a matrix product the expert "
                             "recognizes")
    bias = None
    epilogue = _Exprs(g, shape, (node,)).expr(out)
    if added is not None:
        added = _Exprs(g, shape).expr(added, node)
        if isinstance(added, Weight) and added.layout == "row":
            bias = added
        else:  # a full or scalar tensor, an input: the epilogue adds it first
            epilogue = _replace(epilogue, Value(), Call("add", (Value(), added)))
    return Matmul(a, b, b_transposed, batched, shape, a_shape[-1], dtype, bias,
                  None if epilogue == Value() else epilogue)


def _operand(g: _Graph, arg: Any, user: Node) -> tuple[Input | Weight, tuple[int, ...], bool]:
    """A matrix operand as (the forward input or parameter it reads, its shape there, transposed since?)."""
    transposed = False
    while True:
        if isinstance(arg, Weight):  # a module's parameter, named by _module_call
            return Weight(arg.name, "full"), tuple(g.tensors[arg.name].shape), transposed
        if not isinstance(arg, Node):
            raise g.refuse(user, f"a {type(arg).__name__} operand of {g.name(user)}")
        if arg.op == "placeholder":
            if not (g.is_tensor(arg) and arg.meta["tensor_meta"].dtype.is_floating_point):
                raise Unsupported(f"forward argument {arg.target} is not a floating tensor; the expert reads floats")
            return Input(g.inputs.index(arg), "full"), g.shape(arg), transposed
        if arg.op == "get_attr":
            return Weight(g.weight(arg), "full"), g.shape(arg), transposed
        name, args, kwargs = g.call(arg)
        if name in _IDENTITY:
            arg = args[0]
        elif name in _TRANSPOSES and _swaps_last_two(g, name, args, kwargs):
            arg, transposed = args[0], not transposed
        else:
            raise g.refuse(user, f"{g.name(user)} of a tensor computed by {name}; the expert reads its operands "
                                 "as forward inputs or parameters (transposed or not)")


def _swaps_last_two(g: _Graph, name: str, args: list[Any], kwargs: dict[str, Any]) -> bool:
    """Whether this view swaps the last two dims of its input and keeps the others."""
    rank = len(g.shape(args[0]))
    if name in ("t", ".T"):
        return rank == 2  # .T of more dims reverses them all
    if name == ".mT":
        return True
    if name == "permute":
        dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:] or kwargs.get("dims")
        return [d % rank for d in dims] == [*range(rank - 2), rank - 1, rank - 2]
    dims = [_arg(args, kwargs, 1, "dim0"), _arg(args, kwargs, 2, "dim1")]
    return all(isinstance(d, int) for d in dims) and sorted(d % rank for d in dims) == [rank - 2, rank - 1]


# -- convolutions ----------------------------------------------------------------------------------------

def _conv(g: _Graph, live: set[Node], out: Node, dtype: str) -> Conv | None:
    """The pattern when the output depends on a 2-D convolution (None when it does not): the convolution, its
    bias and the elementwise ops after it (batch norm in eval, activations). Anything else beside it (a
    second convolution, a matrix product, a reduction) is refused."""
    nodes = [n for n in g.gm.graph.nodes if n in live]
    convs = [n for n in nodes if g.name(n) == "conv2d"]
    if not convs:
        return None
    node = convs[0]
    others = [n for n in nodes if n is not node and (g.name(n) in ("conv2d", *_MATMULS) or g.special(n))]
    if others:
        raise g.refuse(others[0], f"{g.what(others[0])} with a convolution; the expert fuses elementwise ops "
                                  "into one convolution per kernel")
    if node.op == "call_module" and (mode := g.gm.get_submodule(node.target).padding_mode) != "zeros":
        raise g.refuse(node, f"{g.what(node)} with padding_mode={mode!r}; the expert pads with zeros only")
    _, args, kwargs = g.call(node)
    x, weight, bias = (_conv_tensor(g, _arg(args, kwargs, i, key), node)
                       for i, key in ((0, "input"), (1, "weight"), (2, "bias")))
    if not isinstance(x, Input) or not isinstance(weight, Weight) or not isinstance(bias, (Weight, type(None))):
        raise g.refuse(node, "conv2d whose input is a parameter, or whose weight or bias is a forward input; the "
                             "expert reads the input from forward and the weight and bias from the module")
    in_shape, w_shape = g.shape(g.inputs[x.index]), tuple(g.tensors[weight.name].shape)
    if len(in_shape) != 4:
        raise g.refuse(node, f"conv2d of a {len(in_shape)}-D input; the expert convolves batched [N, C, H, W] input")
    kernel_size = w_shape[2:]

    def pair(v: Any) -> tuple[int, int] | None:
        v = (v, v) if isinstance(v, int) else tuple(v)
        return v if len(v) == 2 and all(isinstance(i, int) for i in v) else None

    stride, dilation = pair(_arg(args, kwargs, 3, "stride", 1)), pair(_arg(args, kwargs, 5, "dilation", 1))
    padding = _arg(args, kwargs, 4, "padding", 0)
    if padding == "valid":
        padding = 0
    elif padding == "same":  # stride 1 (torch's rule): d * (k - 1) zeros in all, split evenly when it is even
        total = [d * (k - 1) for d, k in zip(dilation or (0, 0), kernel_size)]
        padding = tuple(t // 2 for t in total) if not any(t % 2 for t in total) else None
    padding = pair(padding) if padding is not None else None
    groups = _arg(args, kwargs, 6, "groups", 1)
    shape = g.shape(node)
    expected = tuple((size + 2 * pad - dil * (k - 1) - 1) // step + 1 for size, pad, dil, k, step in zip(
        in_shape[2:], padding or (0, 0), dilation or (1, 1), kernel_size, stride or (1, 1)))
    if None in (stride, padding, dilation) or not isinstance(groups, int) or expected != shape[2:]:
        raise g.refuse(node, f"conv2d with stride {stride}, padding {_arg(args, kwargs, 4, 'padding', 0)!r}, dilation "
                             f"{dilation}; the expert writes the same zero padding on both sides of each dim")
    epilogue = _epilogue(g, (node,), out, shape)
    for leaf in leaves(epilogue) if epilogue is not None else []:
        if not (leaf.layout in ("full", "scalar") or leaf.layout == "broadcast" and _per_channel(g, leaf, shape)):
            name = leaf.name if isinstance(leaf, Weight) else g.inputs[leaf.index].target
            raise g.refuse(out, f"{name} broadcasts over the convolution's output {shape} other than per channel; "
                                "the expert's convolution epilogue reads full tensors, scalars and per-channel vectors")
    # The bias as the epilogue's per-channel vectors are: [K] unsqueezed to [K, 1, 1].
    bias = Weight(bias.name, "broadcast", (1, 2)) if bias is not None else None
    return Conv(x, Weight(weight.name, "full"), bias, stride, padding, dilation, groups, shape, in_shape, kernel_size,
                dtype, epilogue)


def _conv_tensor(g: _Graph, arg: Any, user: Node) -> Input | Weight | None:
    """A convolution's operand as the forward input or parameter it reads (through casts); None for no bias."""
    if arg is None or isinstance(arg, Weight):  # a module's parameter, named by _module_call
        return arg
    arg = _skip_identities(g, arg)
    if isinstance(arg, Node) and arg.op == "placeholder" and g.is_tensor(arg):
        if not arg.meta["tensor_meta"].dtype.is_floating_point:
            raise Unsupported(f"forward argument {arg.target} is not a floating tensor; the expert reads floats")
        return Input(g.inputs.index(arg))
    if isinstance(arg, Node) and arg.op == "get_attr" and arg.target in g.tensors:
        return Weight(g.weight(arg), "full")
    raise g.refuse(user, f"conv2d of a tensor computed by {g.name(arg)}; the expert reads the convolution's "
                         "operands as forward inputs and parameters")


def _per_channel(g: _Graph, leaf: Input | Weight, shape: tuple[int, ...]) -> bool:
    """Whether a broadcast leaf, as unsqueezed, varies along the output's channel dim (dim 1) only."""
    dims = list(g.tensors[leaf.name].shape if isinstance(leaf, Weight) else g.shape(g.inputs[leaf.index]))
    for d in leaf.unsqueeze:
        dims.insert(d, 1)
    dims = [1] * (len(shape) - len(dims)) + dims
    return all(size == 1 for i, size in enumerate(dims) if i != 1)


def _epilogue(g: _Graph, stop: tuple[Node, ...], out: Node, shape: tuple[int, ...], row_dims: int = 1) -> Expr | None:
    epilogue = _Exprs(g, shape, stop, row_dims).expr(out)
    return None if epilogue == Value() else epilogue


def _explicit_rms(mean: RowReduce) -> Norm | None:
    """x * rsqrt(mean(x^2, -1, keepdim=True) + eps) [* weight], as Llama's code writes RMSNorm (casts are gone)."""
    square, epilogue = mean.prologue, mean.epilogue or Value()
    if not (mean.kind == "mean" and mean.keepdim and mean.dims == 1 and isinstance(square, Call)
            and (square.op == "square" or square.op == "mul" and square.args[0] == square.args[1])):
        return None
    x = square.args[0]

    def eps_of(e: Expr) -> float | None:  # eps, when e is x * rsqrt(Value() + eps) in any operand order
        r = _other(e, x, "mul")
        terms = r.args[0].args if isinstance(r, Call) and r.op == "rsqrt" and _other(r.args[0], Value(), "add") else ()
        return next((t.value for t in terms if isinstance(t, Const)), None)

    found = [e for e in _subtrees(epilogue) if eps_of(e) is not None]
    if len(found) != 1 or sum(e == Value() for e in _subtrees(epilogue)) != 1:  # the mean used elsewhere too
        return None
    epilogue = _replace(epilogue, found[0], Value())
    # The weight: a row parameter the normalized value is multiplied by next.
    scaled = next((e for e in _subtrees(epilogue)
                   if isinstance(w := _other(e, Value(), "mul"), Weight) and w.layout == "row"), None)
    weight = _other(scaled, Value(), "mul") if scaled else None
    epilogue = _replace(epilogue, scaled, Value()) if scaled else epilogue
    return Norm("rms", x, mean.shape, mean.dtype, eps_of(found[0]), weight,
                epilogue=None if epilogue == Value() else epilogue)


def _other(e: Expr, operand: Expr, op: str) -> Expr | None:
    """The other operand of e when e is the binary `op` with `operand` as one of its two."""
    if isinstance(e, Call) and e.op == op and operand in e.args:
        return e.args[1 - e.args.index(operand)]
    return None


def _subtrees(e: Expr) -> Iterator[Expr]:
    yield e
    for arg in e.args if isinstance(e, Call) else ():
        yield from _subtrees(arg)


def _replace(e: Expr, old: Expr, new: Expr) -> Expr:
    if e == old:
        return new
    return Call(e.op, tuple(_replace(a, old, new) for a in e.args)) if isinstance(e, Call) else e


# -- scans and cross-entropy -----------------------------------------------------------------------------

_SCAN_OPS = {"cumsum": "sum", "cumprod": "prod"}
_FILLS = {"ones_like": 1.0, "zeros_like": 0.0, "ones": 1.0, "zeros": 0.0, "new_ones": 1.0, "new_zeros": 0.0}
_VIEWS = ("view", "reshape", "flatten")


def _scan_or_loss(g: _Graph, live: set[Node], out: Node, dtype: str) -> Scan | CrossEntropy | None:
    """The pattern when the output depends on a cumsum, cumprod or cross-entropy (None when it does not).

    Such a node is the whole kernel: any other reduction, norm or product beside it is refused."""
    nodes = [n for n in g.gm.graph.nodes if n in live]
    found = [n for n in nodes if g.name(n) in _SCAN_OPS or _is_cross_entropy(g, n)]
    if not found:
        return None
    others = [n for n in nodes if n not in found and (g.special(n) or g.name(n) in _MATMULS)]
    if len(found) > 1 or others:
        second = min(found[1:] + others, key=nodes.index)
        raise g.refuse(second, f"{g.what(second)} with {g.what(found[0])}; the expert writes one scan or loss "
                               "per kernel, with elementwise ops only")
    if _is_cross_entropy(g, found[0]):
        return _cross_entropy(g, found[0], out, dtype)
    return _scan(g, found[0], out, dtype)


def _scan(g: _Graph, node: Node, out: Node, dtype: str) -> Scan:
    """cumsum / cumprod over the last dim, with the exclusive (cat-then-slice) and reverse (flip) idioms."""
    name, args, kwargs = g.call(node)
    kind, rank = _SCAN_OPS[name], len(g.shape(node))
    dim = _arg(args, kwargs, 1, "dim")
    if not (rank and isinstance(dim, int) and dim % rank == rank - 1):
        raise g.refuse(node, f"{name} over dim {dim} of {g.shape(node)}; the expert scans the last dimension only")
    # The input side, outermost first: cat([identity column, x], -1) (exclusive), then flip(x, -1) (reverse).
    source = _skip_identities(g, args[0])
    body = _after_identity_column(g, source, kind)
    exclusive_in = body is not None
    source = _skip_identities(g, body) if exclusive_in else source
    reverse_in = _flips_last(g, source)
    if reverse_in:
        source = g.call(source)[1][0]
    # The output side, innermost first: [..., :-1] (exclusive), then flip(-1) (reverse).
    value = _sole_user(g, node)
    exclusive_out = value is not None and _drops_last_column(g, value)
    value = value if exclusive_out else node
    flipped = _sole_user(g, value)
    reverse_out = flipped is not None and _flips_last(g, flipped)
    value = flipped if reverse_out else value
    identity = "1" if kind == "prod" else "0"
    if exclusive_in != exclusive_out:
        raise g.refuse(node, f"{name} of a concatenation or sliced after it, not both; the expert writes an "
                             f"exclusive {name} as {name}(cat([a column of {identity}s, x], -1), -1)[..., :-1]")
    if reverse_in != reverse_out:
        raise g.refuse(node, f"{name} with a flip on one side only; the expert writes a reverse {name} as "
                             f"flip({name}(flip(x, [-1]), -1), [-1])")
    shape = g.shape(value)
    prologue = _Exprs(g, shape).expr(source, node)
    return Scan(kind, prologue, shape, dtype, reverse_in, exclusive_in, _epilogue(g, (value,), out, shape))


def _skip_identities(g: _Graph, arg: Any) -> Any:
    while g.name(arg) in _IDENTITY:
        arg = g.call(arg)[1][0]
    return arg


def _sole_user(g: _Graph, node: Node) -> Node | None:
    """The one node that reads `node` (through casts and copies), or None when several or none do."""
    while len(node.users) == 1:
        (user,) = node.users
        if g.name(user) not in _IDENTITY:
            return user
        node = user
    return None


def _flips_last(g: _Graph, node: Any) -> bool:
    """Whether the node is flip over the last dim only: torch.flip(x, [-1]), x.flip(-1), fliplr of a matrix."""
    name = g.name(node)
    if name not in ("flip", "fliplr"):
        return False
    args, kwargs = g.call(node)[1:]
    rank = len(g.shape(node))
    if name == "fliplr":
        return rank == 2
    dims = args[1:] if len(args) > 2 else _arg(args, kwargs, 1, "dims")
    dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
    return bool(rank) and all(isinstance(d, int) for d in dims) and [d % rank for d in dims] == [rank - 1]


def _after_identity_column(g: _Graph, node: Any, kind: str) -> Node | None:
    """x when node is cat([c, x], -1) with c a column filled with the scan's identity (0 for sum, 1 for prod)."""
    if g.name(node) not in ("cat", "concat", "concatenate"):
        return None
    args, kwargs = g.call(node)[1:]
    parts, rank = _arg(args, kwargs, 0, "tensors"), len(g.shape(node))
    dim = _arg(args, kwargs, 1, "dim", 0)
    if not (isinstance(parts, (tuple, list)) and len(parts) == 2 and isinstance(dim, int)
            and dim % rank == rank - 1 and all(g.is_tensor(p) for p in parts)):
        return None
    column, body = parts
    fill = _fill_value(g, column)
    if fill != (1.0 if kind == "prod" else 0.0) or g.shape(column) != g.shape(body)[:-1] + (1,):
        return None
    return body


def _fill_value(g: _Graph, node: Node) -> float | None:
    """The number a constant tensor is filled with (ones, zeros, full and their _like and new_ forms)."""
    name = g.name(node)
    args, kwargs = g.call(node)[1:] if name else ([], {})
    if name in _FILLS:
        return _FILLS[name]
    if name in ("full", "full_like", "new_full"):  # x.new_full(size, value): the value comes after the size
        value = _arg(args, kwargs, 2 if name == "new_full" else 1, "fill_value")
        return float(value) if _is_number(value) else None
    return None


def _drops_last_column(g: _Graph, node: Node) -> bool:
    """Whether the node is y[..., :-1] (or y[:, :-1], y[:-1] for a vector): every column but the last."""
    if node.target is not operator.getitem:
        return False
    rank = len(g.shape(node.args[0]))
    index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
    if index[:1] == (Ellipsis,):
        index = (slice(None),) * (rank - len(index) + 1) + index[1:]
    last = index[-1] if len(index) == rank else None
    return (isinstance(last, slice) and all(i == slice(None) for i in index[:-1])
            and last.start in (None, 0) and last.step in (None, 1)
            and last.stop in (-1, g.shape(node.args[0])[-1] - 1))


def _is_cross_entropy(g: _Graph, node: Node) -> bool:
    if node.op == "call_module":
        return isinstance(g.gm.get_submodule(node.target), nn.CrossEntropyLoss)
    return node.op == "call_function" and g.name(node) == "cross_entropy"


def _cross_entropy(g: _Graph, node: Node, out: Node, dtype: str) -> CrossEntropy:
    """F.cross_entropy or nn.CrossEntropyLoss over (N, C) logits and N class indices, returned as it is."""
    args, kwargs = list(node.args), dict(node.kwargs)
    logits, targets = args[0], _arg(args, kwargs, 1, "target")
    if node.op == "call_module":
        m = g.gm.get_submodule(node.target)
        weight, legacy, ignore_index, reduction, smoothing = (
            m.weight, (None, None), m.ignore_index, m.reduction, m.label_smoothing)
    else:
        weight = _arg(args, kwargs, 2, "weight")
        legacy = (_arg(args, kwargs, 3, "size_average"), _arg(args, kwargs, 5, "reduce"))
        ignore_index = _arg(args, kwargs, 4, "ignore_index", -100)
        reduction = _arg(args, kwargs, 6, "reduction", "mean")
        smoothing = _arg(args, kwargs, 7, "label_smoothing", 0.0)
    if weight is not None:
        raise g.refuse(node, "cross_entropy with class weights; the expert writes the unweighted loss")
    if legacy != (None, None) or reduction not in LOSS_REDUCTIONS or not isinstance(ignore_index, int):
        raise g.refuse(node, "cross_entropy with size_average, reduce, a tensor ignore_index or reduction "
                             f"{reduction!r}; the expert writes ignore_index and reduction mean, sum or none")
    if smoothing != 0.0:
        raise g.refuse(node, f"cross_entropy with label_smoothing={smoothing}; the expert writes it without")
    if _skip_identities(g, out) is not node:
        raise g.refuse(out, "the cross_entropy's result is computed on; the expert returns the loss as it is")
    shape = g.shape(logits) if g.is_tensor(logits) else ()
    if len(shape) != 2:
        raise g.refuse(node, f"cross_entropy of logits shaped {shape}; the expert reads (N, C) logits")
    logits_in, targets_in = _input_through_views(g, logits, node), _input_through_views(g, targets, node)
    if not logits_in.meta["tensor_meta"].dtype.is_floating_point or g.shape(logits_in)[-1:] != shape[1:]:
        raise g.refuse(node, "cross_entropy of logits that are not floating, or viewed with another last dim "
                             f"than the input's {g.shape(logits_in)}; the kernel reads the input's rows")
    if targets_in.meta["tensor_meta"].dtype != torch.int64 or g.shape(targets) != shape[:1]:
        raise g.refuse(node, "cross_entropy with targets that are not N int64 class indices (probabilities or "
                             "another dtype); the expert reads class indices")
    return CrossEntropy(Input(g.inputs.index(logits_in)), Input(g.inputs.index(targets_in)), ignore_index,
                        reduction, shape, dtype)


def _input_through_views(g: _Graph, arg: Any, user: Node) -> Node:
    """The forward argument `arg` reads, through casts and views (view(-1, C), reshape, flatten): views keep
    the flat order of the contiguous input, which is how the kernel reads it."""
    node = arg
    while isinstance(node, Node) and node.op != "placeholder" and g.name(node) in (*_IDENTITY, *_VIEWS):
        node = g.call(node)[1][0]
    if not (isinstance(node, Node) and node.op == "placeholder" and g.is_tensor(node)):
        raise g.refuse(user, f"{g.name(user)} of a tensor computed by {g.name(node)}; the expert reads "
                             "forward inputs (viewed or not)")
    return node
