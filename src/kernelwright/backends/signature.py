"""Read C/CUDA function signatures out of source text, and bind Python arguments to them.

`cuda.py` and `cpu.py` call functions by name with tensors and numbers, so they need
each parameter list. This is no C++ parser: it reads `__global__` kernels and
`extern "C"` functions written the ordinary way, and says clearly what it cannot
pass (templates, half scalars, structs by value).
"""

from __future__ import annotations

import ctypes
import functools
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

# Scalar C types, after dropping qualifiers and `std::`, and how to pass them.
_SCALARS: dict[str, type] = {
    spelling: ctype
    for ctype, spellings in (
        (ctypes.c_int, "int|signed|signed int|int32_t"),
        (ctypes.c_uint, "unsigned|unsigned int|uint32_t"),
        (ctypes.c_longlong, "long|long int|long long|long long int|int64_t|ptrdiff_t|ssize_t|intptr_t"),
        (ctypes.c_ulonglong, "unsigned long|unsigned long int|unsigned long long|uint64_t|uintptr_t"),
        (ctypes.c_size_t, "size_t"),
        (ctypes.c_short, "short|short int|int16_t"),
        (ctypes.c_ushort, "unsigned short|unsigned short int|uint16_t"),
        (ctypes.c_byte, "char|signed char|int8_t"),
        (ctypes.c_ubyte, "unsigned char|uint8_t"),
        (ctypes.c_float, "float"),
        (ctypes.c_double, "double"),
        (ctypes.c_bool, "bool"),
    )
    for spelling in spellings.split("|")
}
_HALF_SCALARS = {"__half", "half", "__nv_half", "__nv_bfloat16", "nv_bfloat16", "__bf16", "_Float16"}
_FLOAT_TYPES = (ctypes.c_float, ctypes.c_double)
# Words that qualify a declaration but are not part of a parameter's type.
_DROPPED_WORDS = {"__restrict__", "__restrict", "restrict", "volatile", "register", "__grid_constant__"}
_DECL_QUALIFIERS = {
    "static", "inline", "__inline__", "__forceinline__", "__noinline__", "__host__", "__device__", "__global__",
}
# Attribute-like calls that may sit between `__global__` and the kernel's name.
_ATTRIBUTES = {
    "__launch_bounds__", "__maxnreg__", "__cluster_dims__", "__attribute__", "__declspec", "alignas", "__align__",
}
# A parameter's last word is its name unless it is one of these (`unsigned int` has no name).
_TYPE_WORDS = {word for spelling in _SCALARS for word in spelling.split()} | {"void", "const"}
_NAME_OR_END = re.compile(r"([A-Za-z_]\w*)\s*\(|[;{}=]")
_UNTIL_BODY_OR_SEMICOLON = re.compile(r"[^;{]*")


class SignatureError(ValueError):
    """A function's signature uses something the launch helpers cannot pass."""


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str  # normalised spelling, e.g. "const float*"
    is_pointer: bool
    ctypes_type: type  # c_void_p for pointers


@dataclass(frozen=True)
class Signature:
    name: str
    params: list[Param]
    returns: str  # the return type as written ("void", "int", ...)
    result_type: type | None  # its ctypes type; None for void
    qualified_name: str  # with enclosing namespaces, for NVRTC name expressions


def parse_functions(source: str, kind: Literal["global", "extern_c"]) -> dict[str, list[Param]]:
    """Map each `__global__` kernel ("global") or `extern "C"` function ("extern_c") to its parameters."""
    return {name: sig.params for name, sig in parse_signatures(source, kind).items()}


def parse_signatures(source: str, kind: Literal["global", "extern_c"]) -> dict[str, Signature]:
    """Like `parse_functions`, with return types and namespace-qualified names; SignatureError if unsupported."""
    text = _strip_comments_and_directives(source)
    found: dict[str, Signature] = {}
    for sig, has_body in _global_kernels(text) if kind == "global" else _extern_c_functions(text):
        earlier = found.get(sig.name)
        if earlier and [p.ctype for p in earlier.params] != [p.ctype for p in sig.params]:
            raise SignatureError(f"function '{sig.name}' is overloaded; give each overload its own name")
        # A definition's parameter names beat a forward declaration's (often unnamed) ones.
        if earlier is None or has_body:
            found[sig.name] = sig
    return found


def bind_args(function: str, params: Sequence[Param], args: Sequence[Any], device: torch.device) -> tuple:
    """Check `args` against `params`; return (values, ctypes types) ready to pass on.

    Tensors become data pointers and must be on `device` (dtype and strides are the
    kernel's business); numbers are range-checked, as ctypes would silently wrap them.
    Runs on every launch, so messages are built only on failure."""
    if len(args) != len(params):
        names = ", ".join(p.name for p in params)
        raise TypeError(f"{function} takes {len(params)} arguments ({names}), got {len(args)}")
    values = []
    for index, (param, arg) in enumerate(zip(params, args)):
        if not param.is_pointer:
            values.append(_scalar(function, index, param, arg))
        elif isinstance(arg, torch.Tensor) and arg.device == device:
            values.append(arg.data_ptr())
        elif isinstance(arg, torch.Tensor):
            raise TypeError(f"{_where(function, index, param)} must be a tensor on {device}, got one on {arg.device}")
        else:
            raise TypeError(f"{_where(function, index, param)} is a pointer: pass a tensor, not {type(arg).__name__}")
    return tuple(values), tuple([p.ctypes_type for p in params])


def _scalar(function: str, index: int, param: Param, arg: Any) -> int | float:
    if param.ctypes_type in _FLOAT_TYPES:
        if type(arg) is float or isinstance(arg, numbers.Real):  # the `type` test skips a slow ABC check
            return float(arg)
        wanted = "a real number"
    elif type(arg) is int or isinstance(arg, numbers.Integral):
        low, high = _int_range(param.ctypes_type)
        if low <= int(arg) <= high:
            return int(arg)
        raise TypeError(f"{_where(function, index, param)}: {int(arg)} is outside [{low}, {high}]")
    else:
        wanted = "an integer"
    if isinstance(arg, torch.Tensor):
        raise TypeError(f"{_where(function, index, param)} is a scalar: pass a Python number (tensor.item())")
    raise TypeError(f"{_where(function, index, param)} needs {wanted}, got {type(arg).__name__} {arg!r}")


def _where(function: str, index: int, param: Param) -> str:
    return f"argument {index} ('{param.name}', {param.ctype}) of {function}"


@functools.cache
def _int_range(ctype: type) -> tuple[int, int]:
    if ctype is ctypes.c_bool:
        return 0, 1
    bits = 8 * ctypes.sizeof(ctype)
    signed = ctype(-1).value < 0
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _strip_comments_and_directives(source: str) -> str:
    # String literals are matched (and kept) so that `//` inside `extern "C"`-like strings is safe.
    pattern = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|/\*.*?\*/', re.S)
    text = pattern.sub(lambda m: m.group(0) if m.group(0)[0] in "\"'" else " ", source)
    # Directives (with their `\` continuations) say nothing about signatures and can confuse the scan.
    return re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", "", text, flags=re.M)


def _global_kernels(text: str):
    namespaces = _namespace_spans(text)
    for match in re.finditer(r"\b__global__\b", text):
        decl = _declaration(text, match.start())
        if decl is None:
            continue
        prefix, name, params_text, has_body, _ = decl
        statement_start = max(text.rfind(c, 0, match.start()) for c in ";{}") + 1
        if re.search(r"\btemplate\s*<", text[statement_start : match.start()]):
            raise SignatureError(f"kernel '{name}' is a template: launches need concrete parameter types; write "
                                 "a non-template __global__ kernel (it may call a templated __device__ function)")
        enclosing = [ns for start, end, ns in namespaces if start < match.start() < end and ns]
        qualified = "::".join([*enclosing, name])
        yield _signature(prefix, name, params_text, qualified), has_body


def _extern_c_functions(text: str):
    for match in re.finditer(r'\bextern\s+"C"\s*', text):
        if text.startswith("{", match.end()):
            block_end = _matching(text, match.end(), "{", "}")
            position = match.end() + 1
            while position < block_end:
                decl = _declaration(text, position, limit=block_end)
                position = _statement_end(text, position, block_end) if decl is None else decl[4]
                if decl is not None:
                    yield _signature(*decl[:3]), decl[3]
        else:
            decl = _declaration(text, match.end())
            if decl is not None:
                yield _signature(*decl[:3]), decl[3]


def _signature(prefix: str, name: str, params_text: str, qualified_name: str | None = None) -> Signature:
    returns = " ".join(w for w in prefix.split() if w not in _DECL_QUALIFIERS) or "int"
    base = " ".join(w for w in returns.replace("*", " ").split() if w != "const").removeprefix("std::")
    if "*" in returns:
        result_type = ctypes.c_void_p
    elif base == "void" or base in _SCALARS:
        result_type = _SCALARS.get(base)
    else:
        raise SignatureError(f"function '{name}' returns '{returns}', which ctypes cannot receive; return void")
    return Signature(name, _params(name, params_text), returns, result_type, qualified_name or name)


def _declaration(text: str, start: int, limit: int | None = None):
    """The function declared at `start`, as (prefix, name, params, has_body, end), or None.

    `prefix` is the return type and qualifiers before the name, without attribute calls."""
    limit = len(text) if limit is None else limit
    prefix_parts, position = [], start
    while True:
        match = _NAME_OR_END.search(text, position, limit)
        if match is None or match.group(1) is None:
            return None  # the statement ended before any parameter list: not a function
        open_paren = match.end() - 1
        close_paren = _matching(text, open_paren, "(", ")")
        prefix_parts.append(text[position : match.start()])
        if match.group(1) in _ATTRIBUTES:
            position = close_paren + 1
            continue
        prefix = " ".join(prefix_parts)
        if re.search(r"\b(typedef|using|return)\b", prefix):
            return None
        after = _UNTIL_BODY_OR_SEMICOLON.match(text, close_paren + 1).end()
        has_body = after < limit and text[after] == "{"
        end = _matching(text, after, "{", "}") + 1 if has_body else after + 1
        return prefix, match.group(1), text[open_paren + 1 : close_paren], has_body, end


def _statement_end(text: str, start: int, limit: int) -> int:
    """Skip one non-function statement (a struct, a variable) inside an `extern "C"` block."""
    position = start
    while position < limit:
        if text[position] == "{":
            position = _matching(text, position, "{", "}")
        elif text[position] == ";":
            return position + 1
        position += 1
    return limit


def _matching(text: str, open_index: int, opening: str, closing: str) -> int:
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == opening:
            depth += 1
        elif text[index] == closing:
            depth -= 1
            if depth == 0:
                return index
    raise SignatureError(f"unbalanced '{opening}' in source near: {text[open_index:open_index + 60]!r}")


def _namespace_spans(text: str) -> list[tuple[int, int, str]]:
    """(open brace, close brace, name) of each namespace; anonymous ones have an empty name."""
    matches = re.finditer(r"\bnamespace\s*([\w:]*)\s*\{", text)
    return [(m.end() - 1, _matching(text, m.end() - 1, "{", "}"), m.group(1)) for m in matches]


def _params(function: str, params_text: str) -> list[Param]:
    pieces = _split_top_level(re.sub(r'"(?:\\.|[^"\\])*"', '""', params_text))  # commas in default strings
    return [] if pieces == ["void"] else [_param(function, index, piece) for index, piece in enumerate(pieces)]


def _split_top_level(text: str) -> list[str]:
    """Split a parameter list on commas that are not inside (), <> or []."""
    pieces, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "(<[":
            depth += 1
        elif char in ")>]":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:index].strip())
            start = index + 1
    return [piece for piece in [*pieces, text[start:].strip()] if piece]


def _param(function: str, index: int, text: str) -> Param:
    text = text.split("=")[0]  # default arguments
    if "&" in text:
        raise SignatureError(f"parameter {index} of '{function}' is a reference ({text.strip()}); pass a pointer")
    array_dims = len(re.findall(r"\[[^\]]*\]", text))  # `float x[]` is `float* x`
    words = [w for w in re.sub(r"\[[^\]]*\]", " ", text).replace("*", " * ").split() if w not in _DROPPED_WORDS]
    name = f"arg{index}"
    if len(words) >= 2 and words[-1] != "*" and words[-1] not in _TYPE_WORDS:
        name = words.pop()
    is_const = "const" in words
    base = " ".join(w for w in words if w not in ("const", "*")).removeprefix("std::")
    stars = words.count("*") + array_dims
    ctype = ("const " if is_const else "") + base + "*" * stars
    if stars:
        return Param(name, ctype or "void*", True, ctypes.c_void_p)
    if base in _HALF_SCALARS:
        raise SignatureError(f"parameter '{name}' of '{function}' is a {base} scalar, which cannot be passed "
                             "from Python; take a float and convert inside the kernel")
    if base not in _SCALARS:
        raise SignatureError(f"parameter '{name}' of '{function}' has type '{ctype}', which cannot be passed "
                             "from Python; use pointers, integers, float, double or bool")
    return Param(name, ctype, False, _SCALARS[base])
