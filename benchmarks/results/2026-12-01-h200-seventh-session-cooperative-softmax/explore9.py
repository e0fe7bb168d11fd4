"""Seventh session: the softmax_cooperative kernel (68 % on the vocabulary softmax) against explore7's variant of
it (81 %), in one process. Text changes to the rendered candidate isolate the difference:
T1 loads x with other=-inf instead of the prologue's load (other=0) under tl.where(inside, ., -inf);
T2 also stores without the epilogue helper and cast."""
import sys, os, tempfile
sys.path.insert(0, ".bench-state")
import torch, triton
import explore as E
from explore import Case
import explore7 as X7

T1 = [('x = tl.where(inside, kw_prologue(in0, offs, c, inside), -float("inf"))',
       'x = tl.load(in0 + offs, mask=inside, other=-float("inf"))'),
      ('x_edge = tl.where(edge_inside, kw_prologue(in0, edge_offs, edge_c, edge_inside), -float("inf"))',
       'x_edge = tl.load(in0 + edge_offs, mask=edge_inside, other=-float("inf"))')]
T2 = T1 + [("tl.store(out + offs, kw_epilogue(y, in0, offs, c, inside).to(out.dtype.element_ty), mask=inside)",
            "tl.store(out + offs, y, mask=inside)")]


def main():
    for task, log in (("softmax_vocab", False), ("softmax_log_softmax", True)):
        c = Case(task)
        x = c.inputs[0]
        for params, point in (({}, (4096, 4, 128)), ({"CHUNK": 2048, "maxnreg": 0}, (2048, 4, 0))):
            base = c.source("triton.softmax_cooperative", **params)
            for label, edits in (("T0", []), ("T1", T1), ("T2", T2)):
                src = base
                for old, new in edits:
                    assert old in src, old
                    src = src.replace(old, new)
                c.time_source(f"{label} {params}", src)
            X7.variant(c, x, log, *point, EDGES=log, MASK32=True, HOLD=True)
            c.time_source(f"T0 again {params}", base)


if __name__ == "__main__":
    main()
