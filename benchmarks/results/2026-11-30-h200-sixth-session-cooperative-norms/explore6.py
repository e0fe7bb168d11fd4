"""Sixth session: the lagged register softmax (explore4) with num_stages=1: does the loop's pipelining cost
the registers (248 with a runtime row step, 127 when the step is the constant 1)?"""
import sys
sys.path.insert(0, ".bench-state")
import torch, triton
import explore4 as X4
from explore import Case, NUM_SMS

original = X4.Lagged.launch


def launch(self, x, out, rows, groups, programs):
    common = dict(KP=triton.next_power_of_2(self.K), CHUNK=self.CHUNK, num_warps=self.warps, num_stages=self.stages)
    if rows == 0:  # the probe that sizes the grid: a step other than 1, as the real launch's (1 is specialized)
        groups = 3
    # cooperative: a grid larger than fits fails instead of hanging
    return X4.soft_lagreg[(programs,)](x, out, self.stats, self.counter, rows, self.cols, self.chunk, groups, self.K,
                                       LOG=self.kw["log"], launch_cooperative_grid=rows > 0, **common)


X4.Lagged.launch = launch


original_init = X4.Lagged.__init__


def aligned_init(self, x, cols, CHUNK, warps, per_sm, kind, **kw):
    """As explore4's, but each chunk a multiple of 16 elements, so that its loads can be vectorized."""
    original_init(self, x, cols, CHUNK, warps, per_sm, kind, **kw)
    self.chunk = triton.cdiv(triton.cdiv(cols, self.K), 16) * 16
    self.K = triton.cdiv(cols, self.chunk)
    probe = self.launch(x, torch.empty_like(x), rows=0, groups=1, programs=1)
    self.cap = X4.capacity(probe, warps)
    self.regs, self.spills = probe.n_regs, probe.n_spills
    self.groups = max(NUM_SMS * min(per_sm, self.cap) // self.K, 0)
    self.ok = self.groups >= 1


X4.Lagged.__init__ = aligned_init


def main():
    x = torch.randn(64, 8192, device="cuda"); out = torch.empty_like(x)
    stats = torch.empty(64 * 16 * 2, device="cuda"); counter = torch.zeros(64, dtype=torch.int32, device="cuda")
    for task, log in (("softmax_vocab", False),):
        c = Case(task)
        x = c.inputs[0]
        for CHUNK, warps, per_sm in ((4096, 4, 4), (2048, 4, 8), (8192, 8, 2), (2048, 2, 8)):
            for stages in (3,):
                X4.Lagged.stages = stages
                lag = X4.Lagged(x, x.shape[-1], CHUNK, warps, per_sm, "soft", log=log)
                if lag.ok:
                    c.time_fn(lag.label(per_sm) + f" stages={stages}", lambda: lag(x))


if __name__ == "__main__":
    main()
