"""Seventh session: KL distillation at 82 % of the speed of light. Two suspects found on softmax: a tl.where over
each loaded value (WHERE), and rows of 30522 elements, which start off a multiple of 16, so that every load
is scalar (ALIGN: tiles over the row's 16-aligned interior, then one 32-lane tile of the up to 15 elements
either side, its sums combined with the lanes' at the end). The row kernel by hand with flags, the
template's forward as the reference point."""
import sys
sys.path.insert(0, ".bench-state")
import torch, triton, triton.language as tl
from explore import Case


@triton.jit
def load_div(ptr, offs, mask, WHERE: tl.constexpr):
    if WHERE:
        return tl.where(mask, tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32) / 2.0, -float("inf"))
    return tl.load(ptr + offs, mask=mask, other=-float("inf")).to(tl.float32) / 2.0


@triton.jit
def kl_rows(s_ptr, t_ptr, loss, cols, BLOCK: tl.constexpr, WHERE: tl.constexpr, ALIGN: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    start = row * cols
    end = start + cols
    if ALIGN:
        lo = (start + 15) // 16 * 16
        hi = end // 16 * 16
    else:
        lo = start
        hi = end
    lane = tl.arange(0, BLOCK)
    ms = -float("inf")
    mt = -float("inf")
    ss_lane = tl.zeros([BLOCK], dtype=tl.float32)
    st_lane = tl.zeros([BLOCK], dtype=tl.float32)
    w_lane = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(0, tl.cdiv(hi - lo, BLOCK)):
        offs = lo + i * BLOCK + lane
        mask = lane < (hi - lo - i * BLOCK).to(tl.int32)
        s = load_div(s_ptr, offs, mask, WHERE)
        t = load_div(t_ptr, offs, mask, WHERE)
        ms_new = tl.maximum(ms, tl.max(s, axis=0))
        safe_s = tl.where(ms_new == -float("inf"), 0.0, ms_new)
        ss_lane = ss_lane * tl.exp(ms - safe_s) + tl.exp(s - safe_s)
        ms = ms_new
        mt_new = tl.maximum(mt, tl.max(t, axis=0))
        safe_t = tl.where(mt_new == -float("inf"), 0.0, mt_new)
        scale = tl.exp(mt - safe_t)
        e = tl.exp(t - safe_t)
        st_lane = st_lane * scale + e
        w_lane = w_lane * scale + tl.where(e > 0.0, e * (t - s), 0.0)
        mt = mt_new
    ss = tl.sum(ss_lane, axis=0)
    st = tl.sum(st_lane, axis=0)
    w = tl.sum(w_lane, axis=0)
    if ALIGN:
        edge = tl.arange(0, 32)
        eo = tl.where(edge < 16, start + edge, hi + edge - 16)
        em = tl.where(edge < 16, (eo < lo) & (eo < end), (eo >= lo) & (eo < end))
        s = tl.load(s_ptr + eo, mask=em, other=-float("inf")).to(tl.float32) / 2.0
        t = tl.load(t_ptr + eo, mask=em, other=-float("inf")).to(tl.float32) / 2.0
        ms_new = tl.maximum(ms, tl.max(s, axis=0))
        safe_s = tl.where(ms_new == -float("inf"), 0.0, ms_new)
        ss = ss * tl.exp(ms - safe_s) + tl.sum(tl.exp(s - safe_s), axis=0)
        ms = ms_new
        mt_new = tl.maximum(mt, tl.max(t, axis=0))
        safe_t = tl.where(mt_new == -float("inf"), 0.0, mt_new)
        scale = tl.exp(mt - safe_t)
        e = tl.exp(t - safe_t)
        st = st * scale + tl.sum(e, axis=0)
        w = w * scale + tl.sum(tl.where(e > 0.0, e * (t - s), 0.0), axis=0)
        mt = mt_new
    tl.store(loss + row, w / st + (ms - mt) + tl.log(ss / st))


def main():
    c = Case("loss_kl_distill")
    student, teacher = c.inputs
    rows, cols = student.shape
    loss = torch.empty(rows, device="cuda")
    c.time_source("template default", c.source("triton.kl_div"))
    c.time_source("template 2048/8w", c.source("triton.kl_div", BLOCK=2048, num_warps=8))
    for block, warps in ((1024, 4), (2048, 8), (2048, 4), (4096, 8)):
        for where in (True, False):
            for align in (False, True):
                def run(block=block, warps=warps, where=where, align=align):
                    kl_rows[(rows,)](student, teacher, loss, cols, BLOCK=block, WHERE=where, ALIGN=align, num_warps=warps)
                    return loss.sum() / rows * 4.0
                c.time_fn(f"rows kernel {block}/{warps}w WHERE={int(where)} ALIGN={int(align)}", run)


if __name__ == "__main__":
    main()
