"""CPU template for the distillation loss (KLDivergence): C++ (g++ -O3 -march=native, OpenMP) as in cpu.py.

cpu.kl_div: threads take rows; each row's two maxima (one vectorized pass over both logits), then
(a second pass, the rows still in cache) the sums of exp(s - max s), of exp(t - max t) and of
exp(t - max t) * (t - s), whose row KL is W / S_t + (max s - max t) + log(S_s / S_t), as triton_kl.py
derives. The row losses go to a buffer that one thread adds up in row order afterwards, so the result
does not depend on the threads' timing; then the reduction's division and the epilogue.

The call passes the element count and the row width only, so "batchmean" (PyTorch divides by the
input's size(0)) is written for 2-D logits, where size(0) is the row count.

Parameters: accumulate (double or float, the row sums and the total); math (vector or libm). fp32 only,
as cpu.py.
"""

from __future__ import annotations

from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import KL_REDUCTIONS, Analysis, KLDivergence, Value, leaves
from kernelwright.generate.expert.templates.cpu import _doc, _head, _Kernel, _valid

_KL_DIV = _Text(r"""#include <vector>

extern "C" void kl_div(${params}float* __restrict out, long n, long cols) {
    const long rows = cols > 0 ? n / cols : 0;
    std::vector<${acc}> loss(rows);
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; ++r) {
        const long base = r * cols;
        float ms = -INFINITY, mt = -INFINITY;
        #pragma omp simd reduction(max:ms, mt)
        for (long c = 0; c < cols; ++c) {
            const float s = student(${args}base + c, c), t = teacher(${args}base + c, c);
            ms = s > ms ? s : ms;
            mt = t > mt ? t : mt;
        }
        // As logsumexp: an infinite maximum is not subtracted (inf - inf would be NaN).
        const float shift_s = std::isinf(ms) ? 0.0f : ms, shift_t = std::isinf(mt) ? 0.0f : mt;
        ${acc} ss = 0, st = 0, w = 0;
        #pragma omp simd reduction(+:ss, st, w)
        for (long c = 0; c < cols; ++c) {
            const float s = student(${args}base + c, c), t = teacher(${args}base + c, c);
            const float e = kw_exp(t - shift_t);
            ss += kw_exp(s - shift_s);
            st += e;
            w += e > 0.0f ? e * (t - s) : 0.0f;  // a zero teacher weight adds nothing, whatever t - s is
        }
        loss[r] = w / st + (shift_s - shift_t) + std::log(ss / st);
    }
    ${acc} total = 0;
    for (long r = 0; r < rows; ++r) total += loss[r];
    out[0] = epilogue(static_cast<float>(total${divide}), ${args}0, 0);
}
""")
# The sum's divisor from the call's sizes: the row count is size(0) of 2-D logits.
_DIVIDE = {"batchmean": " / rows", "mean": " / n", "sum": ""}


class KLDivTemplate:
    name = "cpu.kl_div"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, KLDivergence) and p.reduction in KL_REDUCTIONS
                and (p.reduction != "batchmean" or len(p.shape) == 2)
                and _valid(analysis, [p.student, p.epilogue], value_ok=True) and _valid(analysis, [p.teacher])
                and all(leaf.layout == "scalar" for leaf in leaves(p.epilogue or Value())))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        return {"accumulate": ("double", "float"), "math": ("vector", "libm")}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, KLDivergence)
        kernel = _Kernel(analysis, [p.student, p.teacher, p.epilogue])
        source = (_head(params) + kernel.helper("student", p.student) + kernel.helper("teacher", p.teacher)
                  + kernel.helper("epilogue", p.epilogue, with_value=True)
                  + _KL_DIV.substitute(params=kernel.params, args=kernel.args, acc=params["accumulate"],
                                       divide=_DIVIDE[p.reduction]))
        return kernel.candidate(source, "kl_div", "torch.empty((), dtype={x}.dtype, device={x}.device)",
                                _doc(self.name, f"KL divergence ({p.reduction})", params))


TEMPLATES = [KLDivTemplate()]
