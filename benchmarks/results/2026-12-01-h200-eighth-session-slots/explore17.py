"""Eighth session: group norm's groups of 1M elements take 256 programs each, and 4 programs per SM (128
registers) leave 2 groups in flight. Fewer registers a thread (maxnreg 64-96, spilling what does not fit)
for 3-4 groups in flight, with the counter and with slots: the template's own candidates."""
import sys
sys.path.insert(0, ".bench-state")
from explore import Case


def main():
    c = Case("norm_groupnorm")
    for rnd in range(2):
        for slots in (False, True):
            for chunk, warps, maxnreg in ((4096, 4, 128), (4096, 4, 96), (4096, 4, 80), (4096, 4, 72), (4096, 4, 64),
                                          (2048, 2, 80), (8192, 8, 80)):
                if rnd and (chunk, maxnreg) not in ((4096, 128), (4096, 80), (4096, 72)):
                    continue
                c.time_source(f"r{rnd} {chunk}/{warps}w/r{maxnreg} SLOTS={int(slots)}",
                              c.source("triton.norm_cooperative", CHUNK=chunk, num_warps=warps, maxnreg=maxnreg,
                                       SLOTS=slots))


if __name__ == "__main__":
    main()
