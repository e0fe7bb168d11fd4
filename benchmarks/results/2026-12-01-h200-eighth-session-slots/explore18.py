"""Eighth session: group norm's waiters. With 256 programs a row, every waiter polls the row's 256 slots
(SLOTS) or its counter with an atomic (counter). Variants of the template's kw_gather:
MASKED: slots re-polled only where still 0 (masked lanes fetch nothing), kept where already written.
VLOAD: the counter polled with volatile loads, then one acquire atomic once it reads K."""
import sys
sys.path.insert(0, ".bench-state")
from explore import Case
import kernelwright.generate.expert.templates.triton_cooperative as TC

ORIG = TC._PUBLISH
SLOTS_POLL = """        while tl.min(tl.where(slots != 0, 1, 0), axis=0) == 0:
            slots = tl.load(stats + row * K + ks, mask=ks < K, other=1, volatile=True)
"""
MASKED_POLL = """        while tl.min(tl.where(slots != 0, 1, 0), axis=0) == 0:
            slots = slots | tl.load(stats + row * K + ks, mask=(ks < K) & (slots == 0), other=0, volatile=True)
"""
COUNTER_POLL = """        while tl.atomic_add(counter + row, 0, sem="acquire") < K:
            pass
"""
VLOAD_POLL = """        while tl.load(counter + row, volatile=True) < K:
            pass
        tl.atomic_add(counter + row, 0, sem="acquire")
"""


def use(masked=False, vload=False):
    text = ORIG
    for flag, old, new in ((masked, SLOTS_POLL, MASKED_POLL), (vload, COUNTER_POLL, VLOAD_POLL)):
        assert old in text
        if flag:
            text = text.replace(old, new)
    TC._PUBLISH = text


VARIANTS = {"slots": (True, False, False), "slots MASKED": (True, True, False), "counter": (False, False, False),
            "counter VLOAD": (False, False, True)}
POINTS = {"norm_groupnorm": [dict(), dict(CHUNK=8192, num_warps=8), dict(CHUNK=2048, num_warps=2)],
          "norm_instancenorm": [dict()], "softmax_vocab": [dict()], "softmax_log_softmax": [dict(CHUNK=2048, maxnreg=0)]}
TEMPLATE = {"norm_groupnorm": "triton.norm_cooperative", "norm_instancenorm": "triton.norm_cooperative",
            "softmax_vocab": "triton.softmax_cooperative", "softmax_log_softmax": "triton.softmax_cooperative"}


def main():
    for task in sys.argv[1].split(","):
        c = Case(task)
        for rnd in range(2):
            for name, (slots, masked, vload) in VARIANTS.items():
                if task != "norm_groupnorm" and not slots:
                    continue
                use(masked, vload)
                for point in POINTS[task][: (3 if rnd == 0 else 1)]:
                    c.time_source(f"r{rnd} {name:14s} {point}", c.source(TEMPLATE[task], SLOTS=slots, **point))
        use()


if __name__ == "__main__":
    main()
