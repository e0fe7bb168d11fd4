"""Parsing is serialized across threads (CPython's AST constructor is not thread-safe: see pysource)."""

import ast
import threading
import time

from kernelwright import pysource


def test_parses_from_many_threads_run_one_at_a_time(monkeypatch):
    inside, most = [], []
    real_parse = ast.parse

    def slow_parse(source, filename="<unknown>"):
        inside.append(1)
        most.append(len(inside))
        time.sleep(0.01)  # long enough for the other threads to arrive, were there no lock
        inside.pop()
        return real_parse(source, filename=filename)

    monkeypatch.setattr(ast, "parse", slow_parse)
    trees = []
    threads = [threading.Thread(target=lambda: trees.append(pysource.parse("x = 1"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trees) == 8 and all(isinstance(tree, ast.Module) for tree in trees)
    assert max(most) == 1


def test_parse_and_literal_read_what_ast_reads():
    assert ast.dump(pysource.parse("a = b + 1", "t.py")) == ast.dump(ast.parse("a = b + 1"))
    assert pysource.literal("{'status': 'passed', 'time_ms': 1.5}") == {"status": "passed", "time_ms": 1.5}
