"""Ninth session. (1) Decode attention with rounded scores: the new split path (kw_decode_scores, kw_decode_values,
kw_combine) against one split reading k twice. (2) Group norm variants of the template's candidate, patched as text:
HOIST: the channel's weight and bias loaded before the row's wait (their latency hidden by it), not after.
NOAFFINE: no weight and bias at all (wrong output; time only: what the affine step costs).
FILL: K raised so that the rows in flight fill every resident program (264 a row, not 256; KP 512), with
ONE_CHANNEL forced (chunks of 3984 span two channels: wrong output; time only)."""
import sys
sys.path.insert(0, ".bench-state")
import torch
from triton.testing import do_bench
import explore
from explore import Case

HOIST_OLD = """        means, squares = kw_gather(stats, row, K, ks)
"""
HOIST_NEW = """        if ONE_CHANNEL:
            channel = (row % GROUPS) * per_group + (k * chunk) // hw
            kw_g = tl.load(gamma + channel).to(tl.float32)
            kw_b = tl.load(beta + channel).to(tl.float32)
        means, squares = kw_gather(stats, row, K, ks)
"""
AFFINE_OLD = """            channel = (row % GROUPS) * per_group + (k * chunk) // hw
            y = y * tl.load(gamma + channel).to(tl.float32)
            y = y + tl.load(beta + channel).to(tl.float32)
"""
AFFINE_HOISTED = """            y = y * kw_g
            y = y + kw_b
"""
AFFINE_NONE = """            y = y
"""
FILL_OLD = """        kw_groups = min(kw_fit // kw_k, kw_n)
"""
FILL_NEW = """        kw_groups = min(kw_fit // kw_k, kw_n)
        kw_chunk, kw_k = kw_chunks(kw_len, triton.cdiv(kw_len, kw_fit // kw_groups))
        kw_stats = torch.zeros(kw_n * kw_k, dtype=torch.int64, device=kw_x.device)
"""


def patch(source, hoist=False, noaffine=False, fill=False):
    for flag, old, new in ((hoist, HOIST_OLD, HOIST_NEW), (hoist, AFFINE_OLD, AFFINE_HOISTED),
                           (noaffine, AFFINE_OLD, AFFINE_NONE), (fill, FILL_OLD, FILL_NEW)):
        if flag:
            assert old in source, old
            source = source.replace(old, new)
    if fill:
        source = source.replace("ONE_CHANNEL=kw_hw % kw_chunk == 0", "ONE_CHANNEL=True")
    return source


class BF16Case(Case):
    """A task whose inputs the bench draws in bf16 (the explore harness draws fp32)."""
    def __init__(self, task):
        super().__init__(task)
        self.inputs = [t.bfloat16() for t in self.inputs]
        with torch.no_grad():
            self.expected = self.ref(*self.inputs)
        nbytes = sum(t.numel() * t.element_size() for t in self.inputs) + self.expected.numel() * 2
        self.sol_ms = nbytes / explore.BW * 1e3
        self.eager = do_bench(lambda: self.ref(*self.inputs), rep=200)
        print(f"== {task} (bf16): SOL {self.sol_ms:.4f} ms, eager {self.eager:.4f} ms", flush=True)


def decode():
    c = BF16Case("attention_llama3_decode")
    points = [dict(SPLIT=1), dict(SPLIT=2), dict(SPLIT=4), dict(SPLIT=8), dict(SPLIT=16),
              dict(SPLIT=4, BLOCK_N=128), dict(SPLIT=8, BLOCK_N=128), dict(SPLIT=4, num_warps=8),
              dict(SPLIT=8, num_stages=4), dict(SPLIT=4, num_stages=4), dict(SPLIT=16, BLOCK_N=32)]
    for rnd in range(2):
        for point in points[: (len(points) if rnd == 0 else 5)]:
            c.time_source(f"r{rnd} decode {point}", c.source("triton.attention_decode", **point))


def group_norm():
    c = Case("norm_groupnorm")
    base = c.source("triton.norm_cooperative")
    variants = {"template": {}, "HOIST": dict(hoist=True), "NOAFFINE": dict(noaffine=True),
                "FILL": dict(fill=True), "FILL+HOIST": dict(fill=True, hoist=True)}
    for rnd in range(2):
        for name, flags in variants.items():
            c.time_source(f"r{rnd} {name}", patch(base, **flags))
    c2 = Case("norm_instancenorm")
    c2.time_source("instance norm template", c2.source("triton.norm_cooperative"))


if __name__ == "__main__":
    for part in sys.argv[1].split(","):
        {"decode": decode, "groupnorm": group_norm}[part]()
