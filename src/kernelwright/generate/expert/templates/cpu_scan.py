"""CPU templates for scans and cross-entropy: C++ (g++ -O3 -march=native, OpenMP) as in cpu.py.

cpu.scan: OpenMP threads take whole rows; each row is one sequential pass (from its
last column for a reverse scan) with a running sum or product, written through the
epilogue before (exclusive) or after (inclusive) the element joins it. The running
value is a double by default (`accumulate`), as PyTorch's CPU cumsum and cumprod keep
theirs.

cpu.cross_entropy: threads take rows; each row's max (vectorized), then its sum of
exp(x - max) (vectorized, the row still in cache), minus the target's logit. Rows whose
target is ignore_index give 0. "none" writes the row losses; "mean" and "sum" keep them
in a buffer and add them up serially afterwards, so the result does not depend on the
threads' timing.

Parameters: accumulate (double or float); math (vector or libm) where exp or another
transcendental function is called. fp32 only, as cpu.py.
"""

from __future__ import annotations

from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import LOSS_REDUCTIONS, SCANS, Analysis, CrossEntropy, Scan
from kernelwright.generate.expert.templates.cpu import _doc, _head, _Kernel, _math, _valid

_IDENTITY = {"sum": "0", "prod": "1"}
_COMBINE = {"sum": "+=", "prod": "*="}

_SCAN = _Text(r"""
extern "C" void scan(${params}float* __restrict out, long n, long cols) {
    if (n == 0) return;
    const long rows = n / cols;
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; ++r) {
        const long base = r * cols;
        ${acc} running = ${identity};
        for (${columns}) {
            const float v = prologue(${args}base + c, c);
            ${body}
        }
    }
}
""")
# The element's output: exclusive, before it joins the running value; inclusive, after.
_WRITE = "out[base + c] = epilogue(static_cast<float>(running), ${args}base + c, c);"


class ScanTemplate:
    name = "cpu.scan"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return isinstance(p, Scan) and p.kind in SCANS and _valid(analysis, [p.prologue, p.epilogue], value_ok=True)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Scan)
        return {"accumulate": ("double", "float"), **_math([p.prologue, p.epilogue])}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Scan)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue])
        join = f"running {_COMBINE[p.kind]} v;"
        write = _Text(_WRITE).substitute(args=kernel.args)
        body = f"{write}\n            {join}" if p.exclusive else f"{join}\n            {write}"
        columns = "long c = cols - 1; c >= 0; --c" if p.reverse else "long c = 0; c < cols; ++c"
        source = (_head(params) + kernel.helper("prologue", p.prologue)
                  + kernel.helper("epilogue", p.epilogue, with_value=True)
                  + _SCAN.substitute(params=kernel.params, args=kernel.args, acc=params["accumulate"],
                                     identity=_IDENTITY[p.kind], columns=columns, body=body))
        return kernel.candidate(source, "scan", "torch.empty_like({x})",
                                _doc(self.name, f"{p.what} over the last dim", params))


_CROSS_ENTROPY = _Text(r"""#include <vector>

extern "C" void cross_entropy(const float* __restrict logits, const int64_t* __restrict targets,
                              float* __restrict out, long n, long cols) {
    const long rows = cols > 0 ? n / cols : 0;
    ${buffer}
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; ++r) {
        const float* __restrict x = logits + r * cols;
        const int64_t t = targets[r];
        if (t == ${ignore}) { loss[r] = 0.0f; continue; }
        float m = -INFINITY;
        #pragma omp simd reduction(max:m)
        for (long c = 0; c < cols; ++c) m = x[c] > m ? x[c] : m;
        const float shift = std::isinf(m) ? 0.0f : m;  // as logsumexp: no inf - inf
        ${acc} s = 0;
        #pragma omp simd reduction(+:s)
        for (long c = 0; c < cols; ++c) s += kw_exp(x[c] - shift);
        // A target outside [0, cols) is an error in PyTorch; here it only must not read outside the row.
        const float picked = t >= 0 && t < cols ? x[t] : 0.0f;
        loss[r] = static_cast<float>(std::log(s)) + shift - picked;
    }
    ${total}
}
""")
# "mean" and "sum": the row losses in a buffer, added up in row order by one thread.
_TOTAL = """double total = 0;
    long counted = 0;
    for (long r = 0; r < rows; ++r) {
        total += loss[r];
        counted += targets[r] != ${ignore};
    }
    out[0] = static_cast<float>(${result});"""


class CrossEntropyTemplate:
    name = "cpu.cross_entropy"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, CrossEntropy) and p.dtype == "float32" and p.reduction in LOSS_REDUCTIONS
                and all(0 <= leaf.index < len(analysis.forward_args) for leaf in (p.logits, p.targets)))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        return {"accumulate": ("double", "float"), "math": ("vector", "libm")}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, CrossEntropy)
        kernel = _Kernel(analysis, [p.logits, p.targets])  # {x}, which sizes the call, is the logits
        if p.reduction == "none":
            buffer, total = "float* __restrict loss = out;", ""
            out = "torch.empty({x}.numel() // kw_cols, dtype={x}.dtype, device={x}.device)"
        else:
            buffer = "std::vector<float> loss(rows);"
            result = "total / counted" if p.reduction == "mean" else "total"  # 0 / 0: NaN, as PyTorch
            total = _Text(_TOTAL).substitute(ignore=int(p.ignore_index), result=result)
            out = "torch.empty((), dtype={x}.dtype, device={x}.device)"
        source = _head(params) + _CROSS_ENTROPY.substitute(buffer=buffer, total=total, acc=params["accumulate"],
                                                           ignore=int(p.ignore_index))
        return kernel.candidate(source, "cross_entropy", out,
                                _doc(self.name, f"cross-entropy ({p.reduction}, ignore_index={p.ignore_index})",
                                     params))


TEMPLATES = [ScanTemplate(), CrossEntropyTemplate()]
