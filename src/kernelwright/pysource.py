"""Parsing Python source, one thread at a time.

CPython 3.11 and 3.12 keep the AST constructor's recursion depth in state shared by
the interpreter's threads, so two threads parsing at once can fail with "SystemError:
AST constructor recursion depth mismatch" (python/cpython#106905). The evaluation
pool checks candidates from several threads and the search's fakes did fail this way
in CI; every parse of ours goes through `parse` and its lock.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """ast.parse, serialized across threads."""
    with _LOCK:
        return ast.parse(source, filename=filename)


def literal(source: str) -> object:
    """ast.literal_eval of an expression's source, serialized as `parse` is."""
    with _LOCK:
        return ast.literal_eval(source)
