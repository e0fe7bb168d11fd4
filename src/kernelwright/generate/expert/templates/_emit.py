"""Expression trees to straight-line code, for any backend: one temporary per op, in evaluation order.

A backend hands over a table (op -> format string over `{0}`, `{1}`, `{2}`: the
arguments' temporaries, so an argument may appear several times at no cost) and
how to write numbers, tensor leaves and `Value()`. A `special` hook may write an
op itself (e.g. `pow` by a constant exponent as multiplications) and returns
None to fall back to the table. `rounded` wraps each op's result (not leaves or numbers): a
16-bit kernel rounds every op to the task's dtype, as the reference stores each op's output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kernelwright.generate.expert.patterns import Call, Const, Expr, Input, Value, Weight

Leaf = Input | Weight


@dataclass
class Emitter:
    table: dict[str, str]  # op -> format string over its arguments' temporaries
    literal: Callable[[float], str]  # a number as an expression
    leaf: Callable[[Leaf], str]  # a tensor leaf as an expression (a load)
    value: str = "value"  # what Value() reads
    assign: str = "{name} = {code}"  # a statement binding a temporary
    special: Callable[[Call, list[str]], str | None] | None = None
    rounded: str = "{code}"  # an op's result as stored (e.g. cast to the output dtype and back)

    def supports(self, expr: Expr | None, value_ok: bool = False) -> bool:
        """Whether every op of `expr` is in the table (and Value() only where allowed)."""
        if expr is None or isinstance(expr, (Const, Input, Weight)):
            return True
        if isinstance(expr, Value):
            return value_ok
        return expr.op in self.table and all(self.supports(a, value_ok) for a in expr.args)

    def emit(self, expr: Expr, prefix: str) -> tuple[list[str], str]:
        """(statements, the expression holding the result); temporaries are `{prefix}0`, `{prefix}1`, ...

        Each leaf is loaded once (into its own temporary) however often the tree reads it."""
        lines: list[str] = []
        loaded: dict[Leaf, str] = {}

        def bind(code: str) -> str:
            name = f"{prefix}{len(lines)}"
            lines.append(self.assign.format(name=name, code=code))
            return name

        def walk(e: Expr) -> str:
            if isinstance(e, Const):
                return self.literal(float(e.value))
            if isinstance(e, Value):
                return self.value
            if isinstance(e, (Input, Weight)):
                if e not in loaded:
                    loaded[e] = bind(self.leaf(e))
                return loaded[e]
            args = [walk(a) for a in e.args]
            code = self.special(e, args) if self.special is not None else None
            return bind(self.rounded.format(code=code if code is not None else self.table[e.op].format(*args)))

        result = walk(expr)
        return lines, result
