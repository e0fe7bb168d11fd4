"""CPU template for group norm (Norm kind "group"): C++ (g++ -O3 -march=native, OpenMP) as in cpu.py.

A group is one contiguous row of (C / groups) * H * W elements. OpenMP threads take rows; each row gets the
layer norm's passes (cpu.norm): its mean, then its variance about the mean (no cancellation), both in
vectorized reductions; then, channel by channel, the statistics and the channel's weight and bias folded
into one scale and one offset, written as x * scale + offset through the epilogue. A computed prologue (a
residual add) is evaluated once, into the output row, which the later passes read.

Parameters: accumulate (double or float), unroll (GCC's loop unroller); math (vector or libm) where the
prologue or epilogue calls exp or another transcendental function. fp32 only.
"""

from __future__ import annotations

from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import Analysis, Call, Norm, Value, Weight, leaves
from kernelwright.generate.expert.templates.cpu import _doc, _head, _Kernel, _loop, _math, _row_space, _valid

_GROUP_NORM = _Text(r"""
extern "C" void group_norm(${params}float* __restrict out, long samples, long channels, long hw) {
    const long per_group = channels / ${groups}, cols = per_group * hw;
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < samples * ${groups}; ++r) {
        const long base = r * cols;
        float* __restrict y = out + base;
${head}        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) s += ${v};
        const ${acc} mean = s / cols;
        ${acc} q = 0;
        ${loop_q}for (long c = 0; c < cols; ++c) { const ${acc} d = ${v} - mean; q += d * d; }
        const float mu = static_cast<float>(mean);
        const float rstd = static_cast<float>(1 / std::sqrt(q / cols + static_cast<${acc}>(${eps})));
        for (long j = 0; j < per_group; ++j) {
            const long channel = (r % ${groups}) * per_group + j;
            const float scale = ${scale};
            const float offset = ${offset};
            #pragma omp simd
            for (long c = j * hw; c < (j + 1) * hw; ++c) y[c] = epilogue(${v} * scale + offset, ${args}base + c, c);
        }
    }
}
""")


class GroupNormTemplate:
    name = "cpu.group_norm"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, Norm) and p.kind == "group" and p.outputs == ("value",) and len(p.shape) >= 2
                and p.dims == len(p.shape) - 1
                and all(w is None or isinstance(w, Weight) for w in (p.weight, p.bias))
                and all(leaf.layout in ("full", "scalar")
                        for e in (p.prologue, p.epilogue) for leaf in leaves(e or Value()))
                and _valid(analysis, [p.prologue, p.epilogue], value_ok=True))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Norm)
        return {**_row_space(True), **_math([p.prologue, p.epilogue])}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Norm)
        # The weight and bias are kernel arguments like the leaves (read per channel, never through `load`).
        kernel = _Kernel(analysis, [p.prologue, p.epilogue, p.weight, p.bias])
        v, head = f"prologue({kernel.args}base + c, c)", ""
        if isinstance(p.prologue, Call):  # evaluated once into y; later passes read it there
            head = f"        {_loop()}for (long c = 0; c < cols; ++c) y[c] = {v};\n"
            v = "y[c]"
        scale = "rstd" + (f" * {kernel.names[p.weight]}[channel]" if p.weight is not None else "")
        offset = (f"{kernel.names[p.bias]}[channel]" if p.bias is not None else "0.0f") + " - mu * scale"
        source = (_head(params) + kernel.helper("prologue", p.prologue)
                  + kernel.helper("epilogue", p.epilogue, with_value=True)
                  + _GROUP_NORM.substitute(
                      params=kernel.params, args=kernel.args, groups=p.groups, head=head, v=v,
                      acc=params["accumulate"], eps=repr(float(p.eps)), scale=scale, offset=offset,
                      loop_sum=_loop("#pragma omp simd reduction(+:s)"),
                      loop_q=_loop("#pragma omp simd reduction(+:q)")))
        return kernel.candidate(source, "group_norm", "torch.empty_like({x})",
                                _doc(self.name, f"group norm in {p.groups} groups, eps={p.eps}", params),
                                "{x}.shape[0], {x}.shape[1], {x}.shape[2:].numel()")


TEMPLATES = [GroupNormTemplate()]
