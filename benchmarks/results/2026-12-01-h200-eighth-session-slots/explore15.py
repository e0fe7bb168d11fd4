"""Eighth session, second probe: explore14's PACK (statistics in one relaxed 64-bit slot per program, polled
by the waiters) won on softmax, log-softmax and instance norm but lost on group norm (K = 256 slots polled).
COUNT: also a relaxed counter per row, which waiters poll (one word) before reading the slots once; NAP:
nanosleep 200 ns between polls."""
import sys
sys.path.insert(0, ".bench-state")
from explore import Case
import explore14 as X

VARIANTS = {"base": (False, False, False), "PACK": (True, False, False), "PACK+COUNT": (True, True, False),
            "PACK+COUNT+NAP": (True, True, True), "PACK+NAP": (True, False, True)}
PLAN = {"softmax_vocab": (["base", "PACK", "PACK+COUNT", "PACK+NAP"], 3),
        "softmax_log_softmax": (["base", "PACK", "PACK+COUNT", "PACK+NAP"], 3),
        "norm_groupnorm": (list(VARIANTS), 3),
        "norm_instancenorm": (["base", "PACK", "PACK+COUNT", "PACK+COUNT+NAP"], 2)}


def main():
    only = sys.argv[1].split(",") if len(sys.argv) > 1 else list(PLAN)
    for task in only:
        c = Case(task)
        template = X.TASKS[task]
        names, npoints = PLAN[task]
        for rnd in range(2):
            for name in names:
                pack, count, nap = VARIANTS[name]
                X.use(pack, False, count, nap)
                for point in X.POINTS[template][: (npoints if rnd == 0 else 1)]:
                    c.time_source(f"r{rnd} {name:15s} {point}", c.source(template, **point))
        X.use(False, False)


if __name__ == "__main__":
    main()
