"""Seventh session: does the norm kernel lose to the same tl.where over its loaded value that cost the softmax
kernel 13-29 points? N0: the template's candidate; N1: x loaded without the tl.where (the prologue is the
input itself, whose load fills masked lanes with 0 already)."""
import sys
sys.path.insert(0, ".bench-state")
import torch
from explore import Case

N1 = [("""    x = tl.where(inside, kw_prologue(in0, tl.maximum(tl.minimum(first, rows - 1), 0).to(tl.int64) * cols + c, c,
                                     inside), 0.0)""",
       """    x = kw_prologue(in0, tl.maximum(tl.minimum(first, rows - 1), 0).to(tl.int64) * cols + c, c, inside)"""),
      ("""        x_next = tl.where(inside, kw_prologue(in0, tl.minimum(following, rows - 1).to(tl.int64) * cols + c, c,
                                              inside), 0.0)""",
       """        x_next = kw_prologue(in0, tl.minimum(following, rows - 1).to(tl.int64) * cols + c, c, inside)""")]


def main():
    for task in ("norm_instancenorm", "norm_groupnorm"):
        c = Case(task)
        base = c.source("triton.norm_cooperative")
        src = base
        for old, new in N1:
            assert old in src
            src = src.replace(old, new)
        for label, text in (("N0", base), ("N1", src), ("N0 again", base), ("N1 again", src)):
            c.time_source(label, text)


if __name__ == "__main__":
    main()
