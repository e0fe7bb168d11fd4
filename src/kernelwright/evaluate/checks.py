"""Static checks on a candidate's source: reject cheats before anything runs.

A candidate is a Python file defining `class ModelNew(nn.Module)` whose forward
must do its work in its own kernels (Triton, CUDA through NVRTC or load_inline,
CPU C++). Running it proves little on its own: a candidate can hand the work to
PyTorch, cache last call's output, patch the timer or swallow a failing kernel's
error and fall back. This module reads the syntax tree and names every such
pattern with a rule id and a line, so the evaluator can refuse the candidate
and tell its author what to do instead.

The analysis is deliberately simple. Names are followed through imports and
plain assignments, and each function's local names are sorted into kinds
(tensor, kernel module, Triton kernel, torch.nn module) by a flow-insensitive
pass: once a name holds a tensor anywhere in a function, it is a tensor
throughout. That over-approximates, which is the safe direction here. The
tables (what is allowed, what is banned and why) live in `rules.py`.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kernelwright import pysource
from kernelwright.backends import TRITON
from kernelwright.evaluate import rules as R

# Kinds of value a name can hold, as far as the checks care.
TENSOR, KERNEL, JIT, NN, NN_ALLOWED = "tensor", "kernel", "jit", "nn", "nn-allowed"
# Scope kinds: module code and ordinary functions are checked for compute; __init__ may
# build weights with PyTorch; a Triton kernel's body is the kernel itself.
MODULE, INIT, JIT_BODY, FUNCTION = "module", "init", "jit", "function"
_COMPUTING = (MODULE, FUNCTION)
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_SCALAR_ANNOTATIONS = frozenset({"int", "float", "bool", "str", "tuple", "list", "dict"})


@dataclass(frozen=True)
class Violation:
    """One broken rule: which rule, where, and what to do instead."""

    rule: str
    line: int
    message: str


@dataclass(frozen=True)
class StaticReport:
    """Everything the static pass learned: the violations, and which kernels the candidate defines."""

    violations: tuple[Violation, ...]
    backends: frozenset[str]
    kernel_names: frozenset[str]

    @property
    def ok(self) -> bool:
        """True when no rule is broken; the candidate may go on to be run."""
        return not self.violations

    def summary(self) -> str:
        """One line for logs and verdicts: the first violation and how many more follow."""
        if self.ok:
            return "ok"
        first = self.violations[0]
        more = len(self.violations) - 1
        return f"line {first.line} [{first.rule}] {first.message}" + (f" (+{more} more)" if more else "")


def check_candidate(source: str, allowed_ops: Iterable[str] = ()) -> StaticReport:
    """Check a candidate's source against every rule, without running any of it.

    `allowed_ops` lists PyTorch work the task permits (e.g. "linear" for
    `F.linear`, "nn.Linear" for calling an `nn.Linear` submodule, "add" or "+"
    for the `+` operator on tensors); a name matches a call whose dotted name
    equals it or ends with "." + it.
    """
    # Legitimate code never nests hundreds deep; where Python's recursion gives up, so must we.
    too_deep = Violation(R.SYNTAX, 1, "nests too deeply to check; split the expression up")
    try:
        tree = pysource.parse(source)
    except (SyntaxError, ValueError) as err:  # ValueError: a NUL byte in the source
        reason = getattr(err, "msg", None) or err
        found = Violation(R.SYNTAX, getattr(err, "lineno", None) or 1, f"does not parse: {reason}")
    except RecursionError:
        found = too_deep
    else:
        try:
            return _Checker(tree, tuple(allowed_ops)).run()
        except RecursionError:
            found = too_deep
    return StaticReport((found,), frozenset(), frozenset())


@dataclass
class _Class:
    """What a class's own code says about `self`: its methods, and what __init__ stored where."""

    methods: set[str]
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class _Scope:
    """One module, function or lambda body being checked."""

    kind: str
    locals: set[str]  # names Python binds here (they shadow builtins and outer names)
    kinds: dict[str, str] = field(default_factory=dict)  # local name -> TENSOR, KERNEL, JIT, NN...
    self_name: str | None = None
    cls: _Class | None = None


class _Checker(ast.NodeVisitor):
    """Walks one candidate's tree once, after a few passes that resolve names."""

    def __init__(self, tree: ast.Module, allowed_ops: tuple[str, ...]) -> None:
        self.tree = tree
        self.allowed_ops = allowed_ops
        self.violations: dict[tuple[str, int], Violation] = {}
        self.backends: set[str] = set()
        self.kernel_names: set[str] = set()
        self.launched = False
        self.aliases: dict[str, str] = {}  # local name -> the dotted name it stands for
        self.module_defs: set[str] = set()  # module-level names bound by def, class or import
        self.jit_functions: set[str] = set()
        self.used: set[int] = set()  # ids of expressions called or looked into, not handed around
        self.module_names: set[str] = set()  # dotted names bound by `import x` / `import x as y`
        self.unused_input_makers: set[str] = set()  # get_inputs() and friends that nothing here calls
        self.stack: list[_Scope] = []

    def run(self) -> StaticReport:
        self._resolve_names()
        self._scan_strings()
        self.stack.append(self._scope(MODULE, self.tree.body))
        self.visit(self.tree)
        model_new = next((n for n in self.tree.body if isinstance(n, ast.ClassDef) and n.name == "ModelNew"), None)
        if model_new is None:
            self._flag(R.NO_MODEL_NEW, self.tree, "no module-level `class ModelNew(nn.Module)`; define one")
        if not self.launched:
            self._flag(R.NO_CUSTOM_KERNEL, model_new or self.tree,
                       "no custom kernel is both defined and launched; launch a @triton.jit kernel as "
                       "kernel[grid](...) or call a function of a cuda/cpu.compile or load_inline module")
        found = sorted(self.violations.values(), key=lambda v: v.line)
        return StaticReport(tuple(found), frozenset(self.backends), frozenset(self.kernel_names))

    # --- Passes before the walk: imports, aliases, Triton kernels, C sources.

    def _resolve_names(self) -> None:
        """Learn what each imported or aliased name stands for, and which functions are Triton kernels."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    local = a.asname or a.name.split(".")[0]  # `import torch.nn` binds `torch`
                    self.aliases[local] = a.name if a.asname else local
                    self.module_names.add(self.aliases[local])
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        # `mm = torch.matmul` makes `mm(a, b)` a torch.matmul call; repeat for chains of aliases.
        # Not in class bodies: a class attribute is reached as `self.x`, which names do not follow.
        in_class = {id(s) for c in ast.walk(self.tree) if isinstance(c, ast.ClassDef) for s in c.body}
        plain = [n for n in ast.walk(self.tree) if isinstance(n, ast.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0], ast.Name) and id(n) not in in_class]
        while new := {n.targets[0].id: d for n in plain if n.targets[0].id not in self.aliases
                      and (d := self._dotted(n.value)) is not None}:
            self.aliases.update(new)
        self.used |= {id(n.value) for n in plain if self._dotted(n.value) is not None}  # followed, not lost
        # The evaluator takes inputs from the task, so a candidate's own get_inputs() never runs.
        loaded = {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        self.unused_input_makers = {n.name for n in self.tree.body if isinstance(n, ast.FunctionDef)
                                    and n.name in ("get_inputs", "get_init_inputs") and n.name not in loaded}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.FunctionDef) and any(
                    self._dotted(d.func if isinstance(d, ast.Call) else d) in R.TRITON_JIT
                    for d in node.decorator_list):
                self.jit_functions.add(node.name)
            elif (isinstance(node, ast.Call) and self._dotted(node.func) in R.TRITON_JIT
                  and node.args and isinstance(node.args[0], ast.Name)):
                self.jit_functions.add(node.args[0].id)  # kernel = triton.jit(fn)
        if self.jit_functions:
            self.backends.add(TRITON)
            self.kernel_names |= self.jit_functions
        for node in _walk_scope(self.tree.body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.module_defs.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.module_defs |= {a.asname or a.name.split(".")[0] for a in node.names}

    def _scan_strings(self) -> None:
        """Find kernel names in C/C++ sources, and stream or event games written in C."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                self.kernel_names |= R.cuda_kernel_names(node.value) | R.extern_c_names(node.value)
                for rule, found, why in R.c_source_violations(node.value):
                    self._flag(rule, node, f"{found} in C/C++ source: {why}")

    def _scope(self, kind: str, body: list[ast.AST], node: ast.AST | None = None,
               cls: _Class | None = None) -> _Scope:
        """Build a scope and sort its local names into kinds, repeating until nothing changes."""
        scope = _Scope(kind, set(), cls=cls)
        args = node.args if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else None
        if args is not None:
            params = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
            is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                            for d in getattr(node, "decorator_list", ()))
            if cls is not None and params and not is_static:
                scope.self_name = params[0].arg
            defaults = dict(zip([a.arg for a in (args.posonlyargs + args.args)][::-1], args.defaults[::-1]))
            defaults |= {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None}
            for p in params:
                scope.locals.add(p.arg)
                if kind == FUNCTION and p.arg != scope.self_name and not _scalar_param(p, defaults.get(p.arg)):
                    scope.kinds[p.arg] = TENSOR  # parameters carry the task's inputs
        if kind == MODULE:
            scope.kinds |= {name: JIT for name in self.jit_functions}
        pairs: list[tuple[ast.AST, ast.AST]] = []
        for sub in _walk_scope(body):
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
                scope.locals.add(sub.id)
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                scope.locals.add(sub.name)
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                scope.locals |= {a.asname or a.name.split(".")[0] for a in sub.names}
            pairs.extend(_bindings(sub))
        self.stack.append(scope)
        while any([self._bind(target, value, scope.kinds) for target, value in pairs]):
            pass
        self.stack.pop()
        return scope

    def _bind(self, target: ast.AST, value: ast.AST, kinds: dict[str, str]) -> bool:
        """Give the names in `target` the kind of `value`; True if any name is new."""
        if (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
                and len(target.elts) == len(value.elts)):
            return any([self._bind(t, v, kinds) for t, v in zip(target.elts, value.elts)])
        kind = self._kind(value)
        names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        new = [n for n in names if kind and n not in kinds]
        kinds |= {n: kind for n in new}
        return bool(new)

    # --- What names and expressions are.

    def _dotted(self, node: ast.AST) -> str | None:
        """`torch.nn.functional.linear` for `F.linear` (or `getattr(F, "linear")`); None if not imported."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) == 2 and _is_str(node.args[1])):
            base = self._dotted(node.args[0])
            return f"{base}.{node.args[1].value}" if base else None
        return None

    def _kind(self, node: ast.AST) -> str | None:
        """TENSOR, KERNEL, JIT, NN or NN_ALLOWED for what `node` evaluates to; None for anything else."""
        if isinstance(node, ast.Name):
            for scope in reversed(self.stack):
                if node.id in scope.kinds or node.id in scope.locals:
                    return scope.kinds.get(node.id)
            return None
        if isinstance(node, ast.Attribute):
            cls = self._cls()
            if isinstance(node.value, ast.Name) and node.value.id == self._self_name() and cls:
                return cls.attrs.get(node.attr)
            base = self._kind(node.value)
            if base == KERNEL:
                return KERNEL  # mod.my_kernel
            if base in (NN, NN_ALLOWED):
                return TENSOR if node.attr in R.NN_TENSOR_ATTRS else None
            return TENSOR if base == TENSOR and node.attr in R.TENSOR_VALUE_ATTRS else None
        if isinstance(node, ast.Subscript):
            base = self._kind(node.value)
            return None if base == TENSOR and _is_str(node.slice) else base  # meta["BLOCK"] is no tensor
        if isinstance(node, ast.Call):
            return self._call_kind(node)
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp)):
            return TENSOR if TENSOR in map(self._kind, ast.iter_child_nodes(node)) else None
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.IfExp)):
            kinds = [self._kind(e) for e in ast.iter_child_nodes(node)]
            return TENSOR if TENSOR in kinds else next((k for k in kinds if k), None)
        if isinstance(node, (ast.Starred, ast.NamedExpr, ast.Await)):
            return self._kind(node.value)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self._kind(node.elt)
        return None

    def _call_kind(self, node: ast.Call) -> str | None:
        func_kind = self._kind(node.func)
        if func_kind in (KERNEL, NN, NN_ALLOWED):
            return TENSOR
        if func_kind == JIT:
            return None
        name = self._dotted(node.func)
        if name is not None:
            if name in R.KERNEL_BUILDERS:
                return KERNEL
            if name in R.TRITON_JIT:
                return JIT
            if name.startswith("torch."):
                if R.is_torch_module_class(name):
                    return NN_ALLOWED if self._op_allowed(name) else NN
                return None if name in R.TORCH_QUERIES else TENSOR
            return TENSOR if name.split(".")[0] in R.LIBRARY_COMPUTE_ROOTS and self._tensor_args(node) else None
        if isinstance(node.func, ast.Attribute) and self._kind(node.func.value) == TENSOR:
            return None if node.func.attr in R.TENSOR_QUERY_METHODS else TENSOR
        if isinstance(node.func, ast.Name) and node.func.id in R.SCALAR_BUILTINS:
            return None
        return TENSOR if self._tensor_args(node) else None  # helpers: tensors in, tensors out

    def _tensor_args(self, node: ast.Call) -> bool:
        return any(self._kind(a) == TENSOR for a in node.args + [k.value for k in node.keywords])

    def _self_name(self) -> str | None:
        return next((s.self_name for s in reversed(self.stack) if s.self_name), None)

    def _cls(self) -> _Class | None:
        return next((s.cls for s in reversed(self.stack) if s.cls), None)

    def _shadowed(self, name: str) -> bool:
        """Whether a builtin's name is rebound where it is used (a parameter called `input`, say)."""
        for scope in reversed(self.stack):
            if scope.kind == MODULE:  # `open = open` at module level still reaches the builtin
                return name in self.module_defs or (len(self.stack) > 1 and name in scope.locals)
            if name in scope.locals:
                return True
        return False

    def _is_shared(self, node: ast.AST) -> bool:
        """Whether `node` lives beyond one call: `self`, a class, a module-level or closure name."""
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        if not isinstance(node, ast.Name):
            return False
        if node.id == self._self_name():
            return True
        owner = next((s for s in reversed(self.stack) if node.id in s.locals), None)
        return owner is not None and owner is not self.stack[-1]

    def _op_allowed(self, name: str) -> bool:
        return any(name == op or name.endswith("." + op) for op in self.allowed_ops)

    def _torch_allowed(self, name: str) -> bool:
        method = name.removeprefix("torch.Tensor.")
        return (name in R.TORCH_ALLOWED or self._op_allowed(name)
                or (method != name and method in R.TENSOR_ALLOWED_METHODS))

    def _operator_allowed(self, op: ast.AST) -> bool:
        return any(n in self.allowed_ops for n in R.OPERATOR_NAMES.get(type(op), ()))

    def _flag(self, rule: str, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 1)
        self.violations.setdefault((rule, line), Violation(rule, line, message))

    # --- The walk: imports, definitions, statements, expressions.

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._check_import(a.name, a.asname, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._flag(R.REFERENCE_MODEL, node, "relative imports may reach the task module; "
                       "import only torch, triton, numpy and kernelwright.backends")
            return
        for a in node.names:
            if a.name == "*":
                rule, why = R.banned(node.module) or (R.REFERENCE_MODEL, "it hides which names (the reference "
                                                      "Model among them) the candidate uses")
                self._flag(rule, node, f"from {node.module} import *: {why}; import names one by one")
            else:
                self._check_import(f"{node.module}.{a.name}", a.asname, node)

    def _check_import(self, name: str, asname: str | None, node: ast.AST) -> None:
        if "Model" in (name.rsplit(".", 1)[-1], asname):
            self._flag(R.REFERENCE_MODEL, node, "imports a Model: ModelNew must not use the reference model")
        elif hit := R.banned(name):
            self._flag(hit[0], node, f"imports {name}: {hit[1]}")
        elif name.split(".")[0] not in R.ALLOWED_IMPORT_ROOTS:
            self._flag(R.REFERENCE_MODEL, node, f"imports {name}, which may be the task module or a library "
                       "doing the work; import only torch, triton, numpy, kernelwright.backends, stdlib helpers")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if node.name == "Model":
            self._flag(R.REFERENCE_MODEL, node, "defines a class named Model, the reference's name; rename it")
        for base in node.bases:
            name = self._dotted(base)
            if name in R.TENSOR_CLASSES:
                self._flag(R.TENSOR_SUBCLASS, node, f"subclasses {name}: tensor subclasses reroute torch calls")
            elif name and name.startswith("torch.") and name not in R.ALLOWED_TORCH_BASES:
                self._flag(R.TORCH_COMPUTE, node, f"subclasses {name}, inheriting PyTorch's forward; "
                           "subclass torch.nn.Module and launch your own kernels")
        if node.keywords:
            self._flag(R.INTROSPECTION, node, "class keywords (metaclass=...) change the class behind its source")
        for n in node.bases + node.keywords + node.decorator_list:
            self.visit(n)
        info = _Class({f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))})
        init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if init is not None:  # before any method: forward may come first in the source
            self._learn_init(init, info)
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _is_dunder(item.name) and item.name != "__init__":
                    rule, why = R.DUNDER_METHOD_RULES.get(
                        item.name, (R.INTROSPECTION, "it changes how the evaluator's calls and lookups behave"))
                    self._flag(rule, item, f"defines {item.name}: {why}")
                self._visit_function(item, info)
            else:
                self.visit(item)

    def _learn_init(self, node: ast.FunctionDef, cls: _Class) -> None:
        """Record what __init__ stores on self: kernel modules, tensors, torch.nn submodules."""
        scope = self._scope(INIT, node.body, node, cls)
        self.stack.append(scope)
        for sub in _walk_scope(node.body):
            if isinstance(sub, (ast.Assign, ast.AnnAssign)) and sub.value is not None:
                for t in sub.targets if isinstance(sub, ast.Assign) else [sub.target]:
                    if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                            and t.value.id == scope.self_name and (kind := self._kind(sub.value))):
                        cls.attrs.setdefault(t.attr, kind)
            elif (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.args
                  and sub.func.attr in ("register_buffer", "register_parameter") and _is_str(sub.args[0])):
                cls.attrs.setdefault(sub.args[0].value, TENSOR)
        self.stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._visit_function(node, None)

    visit_AsyncFunctionDef = visit_FunctionDef

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, cls: _Class | None) -> None:
        if isinstance(node, ast.AsyncFunctionDef):
            self._flag(R.THREADS_PROCESSES, node, "async functions run work outside the timed call; use plain def")
        for n in node.decorator_list + [node.args] + ([node.returns] if node.returns else []):
            self.visit(n)
        if node.name in self.jit_functions:
            kind = JIT_BODY
        elif (cls is not None and node.name == "__init__") or node in self.tree.body and (
                node.name in self.unused_input_makers):
            kind = INIT  # may build tensors with PyTorch
        else:
            kind = FUNCTION
        if kind != JIT_BODY:
            self._check_defaults(node.args)
        self.stack.append(self._scope(kind, node.body, node, cls))
        for stmt in node.body:
            self.visit(stmt)
        self.stack.pop()

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._check_defaults(node.args)
        # A lambda's body runs when it is called, which may be in forward: never an __init__ body.
        self.stack.append(self._scope(JIT_BODY if self.stack[-1].kind == JIT_BODY else FUNCTION, [node.body], node))
        self.visit(node.body)
        self.stack.pop()

    def _check_defaults(self, args: ast.arguments) -> None:
        for d in args.defaults + [d for d in args.kw_defaults if d is not None]:
            mutable = isinstance(d, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)) or (
                isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id in ("list", "dict", "set"))
            if mutable:
                self._flag(R.GLOBAL_STATE, d, "a mutable default argument persists across calls and can cache "
                           "outputs; default to None")

    def visit_Try(self, node: ast.Try) -> None:
        if node.handlers:
            self._flag(R.TRY_EXCEPT, node, "try/except turns a failing kernel into a silent fallback; "
                       "let errors propagate (try/finally is fine)")
        self.generic_visit(node)

    visit_TryStar = visit_Try

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        self._flag(R.GLOBAL_STATE, node, "global/nonlocal state written from a function can cache outputs "
                   "across calls; keep state in locals")

    visit_Nonlocal = visit_Global

    def visit_Assign(self, node: ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Delete) -> None:
        for target in getattr(node, "targets", None) or [node.target]:
            self._check_store(target)
        if isinstance(node, ast.AugAssign):
            self._check_operator(node.op, [node.target, node.value], node)
        self.generic_visit(node)

    visit_AnnAssign = visit_AugAssign = visit_Delete = visit_Assign

    def _check_store(self, target: ast.AST) -> None:
        """Writes through attributes and subscripts: module patches, tensor copies, caches."""
        if isinstance(target, (ast.Tuple, ast.List, ast.Starred)):
            for t in target.elts if not isinstance(target, ast.Starred) else [target.value]:
                self._check_store(t)
            return
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            return
        kind, text = self.stack[-1].kind, ast.unparse(target)
        if isinstance(target, ast.Attribute) and self._dotted(target.value) is not None:
            self._flag(R.TIMING_PATCH, target, f"assigns {text}: patching an imported module "
                       "changes what the evaluator measures; leave modules as they are")
        elif kind in _COMPUTING and self._kind(target.value) == TENSOR:
            self._flag(R.TORCH_COMPUTE, target, f"writes into a tensor ({text}): that is a PyTorch copy "
                       "kernel; write outputs from your own kernel")
        elif kind == FUNCTION and (isinstance(target, ast.Attribute) or self._is_shared(target.value)):
            self._flag(R.GLOBAL_STATE, target, f"writes {text} outside __init__: state kept across calls "
                       "can cache outputs; keep per-call values in locals")

    def visit_Call(self, node: ast.Call) -> None:
        self.used.add(id(node.func))
        name, kind = self._dotted(node.func), self.stack[-1].kind
        self._check_kernel_call(node, name)
        if isinstance(node.func, ast.Name) and not self._shadowed(node.func.id):
            self._check_builtin_call(node.func.id, node)
        if kind in _COMPUTING:
            self._check_compute_call(node, name)
        if (kind == FUNCTION and name is None and isinstance(node.func, ast.Attribute)
                and node.func.attr in R.MUTATING_METHODS and self._kind(node.func.value) is None
                and self._is_shared(node.func.value)):
            self._flag(R.GLOBAL_STATE, node, f"{ast.unparse(node.func)}(...) mutates state kept across calls, "
                       "which can cache outputs; keep per-call values in locals")
        self.generic_visit(node)

    def _check_kernel_call(self, node: ast.Call, name: str | None) -> None:
        """Note kernel builds and launches; reject Triton kernels run as plain Python."""
        if name in R.KERNEL_BUILDERS:
            self.backends.add(R.KERNEL_BUILDERS[name])
        func = node.func
        base = self._kind(func.value) if isinstance(func, (ast.Attribute, ast.Subscript)) else None
        if base == KERNEL or (base == JIT and isinstance(func, ast.Subscript)):
            self.launched = True  # mod.k[grid, block](...), lib.f(...), kernel[grid](...)
        if self.stack[-1].kind == JIT_BODY:
            if name and name.split(".")[0] in ("torch", "numpy"):
                self._flag(R.TORCH_COMPUTE, node, f"{name} in a Triton kernel: kernels cannot call PyTorch (the "
                           "interpreter would run it on the host); use triton.language")
        elif self._kind(func) == JIT and not isinstance(func, ast.Subscript):
            self._flag(R.NO_CUSTOM_KERNEL, node, f"calls the Triton kernel {ast.unparse(func)} directly, which "
                       "the interpreter runs as plain Python; launch it as kernel[grid](...)")

    def _check_builtin_call(self, fn: str, node: ast.Call) -> None:
        if fn in ("getattr", "setattr", "delattr"):
            attr = node.args[1] if len(node.args) > 1 else None
            if not _is_str(attr):
                self._flag(R.INTROSPECTION, node, f"{fn} with a computed name hides what is reached; "
                           "write obj.name")
            else:
                self._check_attr_name(attr.value, node)
                self.used.add(id(node.args[0]))
            if fn != "getattr" and node.args:
                if self._dotted(node.args[0]) is not None:
                    self._flag(R.TIMING_PATCH, node, f"{fn} on an imported module patches what the "
                               "evaluator measures; leave modules as they are")
                elif self.stack[-1].kind == FUNCTION and self._is_shared(node.args[0]):
                    self._flag(R.GLOBAL_STATE, node, f"{fn} outside __init__ keeps state across calls, "
                               "which can cache outputs")
        elif fn == "type" and len(node.args) == 3:
            self._flag(R.INTROSPECTION, node, "type() with three arguments builds a class behind the source")
        elif fn in R.TENSOR_BUILTINS and self.stack[-1].kind in _COMPUTING and self._tensor_args(node):
            self._flag(R.TORCH_COMPUTE, node, f"{fn}() on tensors runs PyTorch operators; "
                       "do the reduction in your kernel")

    def _check_compute_call(self, node: ast.Call, name: str | None) -> None:
        """PyTorch (or numpy) doing the work: torch.* calls, tensor methods, torch.nn submodules."""
        func = node.func
        if name is not None:
            if name.startswith("torch.") and not self._torch_allowed(name) and R.banned(name) is None:
                self._flag(R.TORCH_COMPUTE, node, f"{name} is PyTorch compute; do this work in your own kernel "
                           "(allowed: allocation such as torch.empty, views, shape queries)")
            elif name.split(".")[0] in R.LIBRARY_COMPUTE_ROOTS and self._tensor_args(node):
                self._flag(R.TORCH_COMPUTE, node, f"{name} on a tensor is library compute; "
                           "do this work in your own kernel")
            return
        func_base = self._kind(func.value) if isinstance(func, ast.Attribute) else None
        if self._kind(func) == NN or (func_base == NN and func.attr not in R.NN_TENSOR_ATTRS):
            self._flag(R.TORCH_COMPUTE, node, f"{ast.unparse(func)}(...) runs a torch.nn module; "
                       "read its .weight/.bias and launch your own kernel")
        elif isinstance(func, ast.Attribute) and self._is_tensor_compute(func, node):
            self._flag(R.TORCH_COMPUTE, node, f".{func.attr}() is a PyTorch tensor method; do this work in "
                       "your own kernel (allowed: views such as .view/.reshape, shape queries)")

    def _is_tensor_compute(self, func: ast.Attribute, call: ast.Call | None) -> bool:
        """Whether `obj.name` is a torch.Tensor method that computes (not a view, query or our own method)."""
        method, base = func.attr, self._kind(func.value)
        if method not in R.TENSOR_METHODS or method in R.TENSOR_ALLOWED_METHODS:
            return False
        if base in (KERNEL, JIT, NN, NN_ALLOWED) or (base != TENSOR and method in R.AMBIGUOUS_METHODS):
            return False
        if self._kind(func) is not None:
            return False  # an attribute known to hold a kernel, tensor or module, not a method
        cls = self._cls()
        if isinstance(func.value, ast.Name) and func.value.id == self._self_name() and cls and method in cls.methods:
            return False
        if method == "to" and (call is None or not self._to_converts(call)):
            return False  # .to(device) moves data; .to(dtype) converts it
        return not self._op_allowed(f"torch.Tensor.{method}")

    def _to_converts(self, call: ast.Call) -> bool:
        """Whether `.to(...)` may change dtype or layout: anything but a device argument counts."""
        if any(k.arg not in ("device", "non_blocking") for k in call.keywords):
            return True
        return not all(_is_str(a) or (isinstance(a, ast.Attribute) and a.attr == "device")
                       or (isinstance(a, ast.Call) and self._dotted(a.func) == "torch.device") for a in call.args)

    def _check_operator(self, op: ast.AST, operands: list[ast.AST], node: ast.AST) -> None:
        if (self.stack[-1].kind in _COMPUTING and not isinstance(op, (ast.Is, ast.IsNot))
                and TENSOR in map(self._kind, operands) and not self._operator_allowed(op)):
            symbol = R.OPERATOR_NAMES.get(type(op), ("", type(op).__name__))[1]
            self._flag(R.TORCH_COMPUTE, node, f"`{symbol}` on tensors ({ast.unparse(node)}) is PyTorch "
                       "compute; do it inside your kernel")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._check_operator(node.op, [node.left, node.right], node)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if not isinstance(node.op, ast.Not):  # `not x` only reads a value, like .item()
            self._check_operator(node.op, [node.operand], node)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for op, left, right in zip(node.ops, [node.left] + node.comparators, node.comparators):
            self._check_operator(op, [left, right], node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if (self.stack[-1].kind in _COMPUTING and isinstance(node.ctx, ast.Load)
                and self._kind(node.value) == TENSOR and self._kind(node.slice) == TENSOR):
            self._flag(R.TORCH_COMPUTE, node, f"indexing a tensor with a tensor ({ast.unparse(node)}) is a "
                       "PyTorch gather; do it inside your kernel")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._check_attr_name(node.id, node)
        if not isinstance(node.ctx, ast.Load):
            return
        if node.id in R.BANNED_BUILTINS and not self._shadowed(node.id):
            rule, why = R.BANNED_BUILTINS[node.id]
            self._flag(rule, node, f"{node.id}: {why}")
        elif node.id in self.aliases:
            self._check_reference(self.aliases[node.id], node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self._dotted(node)
        if name is None:
            self._check_attr_name(node.attr, node)
            if self.stack[-1].kind != JIT_BODY and self._kind(node.value) == JIT:
                self._flag(R.INTROSPECTION, node, f"{ast.unparse(node)} reaches inside a Triton kernel (.fn is "
                           "its plain Python function); launch it as kernel[grid](...)")
            if (isinstance(node.ctx, ast.Load) and id(node) not in self.used and self.stack[-1].kind in _COMPUTING
                    and self._kind(node.value) == TENSOR and self._is_tensor_compute(node, None)):
                self._flag(R.TORCH_COMPUTE, node, f".{node.attr} handed around is a PyTorch tensor method; "
                           "do this work in your own kernel")
            self.generic_visit(node)
            return
        # A chain of imported names: check every link here, and do not visit the links one by one
        # (`kernelwright` alone is banned, `kernelwright.backends.cuda.compile` is not).
        for link in name.split(".")[1:]:
            self._check_attr_name(link, node)
        if isinstance(node.ctx, ast.Load):
            self._check_reference(name, node)

    def _check_attr_name(self, attr: str, node: ast.AST) -> None:
        if attr == "Model":
            self._flag(R.REFERENCE_MODEL, node, "uses the reference Model; ModelNew must compute on its own")
        elif attr in R.FRAME_ATTRS:
            self._flag(R.INTROSPECTION, node, f"{attr}: frame access reaches the evaluator's variables")
        elif _is_dunder(attr) and attr not in R.ALLOWED_DUNDERS:
            self._flag(R.INTROSPECTION, node, f"{attr}: dunder access reaches interpreter internals or calls "
                       "tensor operators by hand")

    def _check_reference(self, name: str, node: ast.AST) -> None:
        """Any use of an imported name: banned modules, and torch functions or modules handed around."""
        if hit := R.banned(name):
            self._flag(hit[0], node, f"{name}: {hit[1]}")
        elif self.stack[-1].kind == JIT_BODY or id(node) in self.used:
            return
        elif name.startswith("torch.") and R.is_torch_function(name) and not self._torch_allowed(name):
            self._flag(R.TORCH_COMPUTE, node, f"{name} handed around uncalled is PyTorch compute waiting "
                       "to run; do this work in your own kernel")
        elif ((name.split(".")[0] in ("torch", "numpy") and name in self.module_names)
              or isinstance(R.torch_object(name), types.ModuleType)):
            self._flag(R.TORCH_COMPUTE, node, f"the module {name} handed around as a value hides which of its "
                       "functions run; call none of them, launch your own kernel")


def _walk_scope(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node of a body in source order, without entering nested functions, lambdas or classes."""
    for node in nodes:
        yield node
        if not isinstance(node, _NESTED_SCOPES):
            yield from _walk_scope(ast.iter_child_nodes(node))


def _bindings(node: ast.AST) -> Iterator[tuple[ast.AST, ast.AST]]:
    """(target, value) pairs a statement binds; a loop target gets its iterable's kind."""
    if isinstance(node, ast.Assign):
        yield from ((t, node.value) for t in node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
        yield node.target, node.value
    elif isinstance(node, ast.AugAssign):
        yield node.target, ast.BinOp(node.target, node.op, node.value)
    elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        yield node.target, node.iter
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        yield node.optional_vars, node.context_expr


def _scalar_param(param: ast.arg, default: ast.AST | None) -> bool:
    """A parameter annotated `int` (or similar) or with a default other than None holds no tensor."""
    annotated = isinstance(param.annotation, ast.Name) and param.annotation.id in _SCALAR_ANNOTATIONS
    return annotated or not (default is None or (isinstance(default, ast.Constant) and default.value is None))


def _is_str(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")
