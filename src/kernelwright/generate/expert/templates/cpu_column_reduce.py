"""CPU template for a reduction over dims that are not the last (ColumnReduce): C++ (g++ -O3 -march=native,
OpenMP) as in cpu.py.

The prologue's tensor is viewed as (outer, reduced, inner). OpenMP threads take work items of one outer
index and `tile` adjacent columns; each walks down the rows keeping one accumulator per column, and adds
each row's run of `tile` contiguous elements to them in a `#pragma omp simd` loop: the memory is read in
order, a row segment at a time, rather than down one column at stride `inner`. Max and min propagate NaN,
as torch's do.

Parameters: accumulate (double or float, for sums), tile (columns per work item), unroll (GCC's loop
unroller); math (vector or libm) where the prologue calls exp or another transcendental function. fp32 only.
"""

from __future__ import annotations

from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import COLUMN_REDUCTIONS, Analysis, ColumnReduce, Value, leaves
from kernelwright.generate.expert.templates.cpu import _doc, _head, _Kernel, _math, _valid

# kind -> (identity, the accumulator combined with the element v, the output from the accumulator a).
_KINDS = {
    "sum": ("0", "a + v", "static_cast<float>(a)"),
    "mean": ("0", "a + v", "static_cast<float>(a / reduced)"),
    "max": ("-INFINITY", "kw_max(a, v)", "a"),
    "min": ("INFINITY", "kw_min(a, v)", "a"),
}

_COLUMN = _Text(r"""
extern "C" void column_reduce(${params}float* __restrict out, long outer, long reduced, long inner) {
    const long tiles = (inner + ${tile} - 1) / ${tile};
    #pragma omp parallel for schedule(static)
    for (long t = 0; t < outer * tiles; ++t) {
        const long o = t / tiles, c0 = (t % tiles) * ${tile};
        const long c1 = c0 + ${tile} < inner ? c0 + ${tile} : inner;
        ${acc} acc[${tile}];
        for (long c = c0; c < c1; ++c) acc[c - c0] = ${identity};
        for (long r = 0; r < reduced; ++r) {
            const long base = (o * reduced + r) * inner;
            #pragma omp simd
            for (long c = c0; c < c1; ++c) {
                const ${acc} a = acc[c - c0];
                const ${acc} v = prologue(${args}base + c, c);
                acc[c - c0] = ${combine};
            }
        }
        for (long c = c0; c < c1; ++c) {
            const ${acc} a = acc[c - c0];
            out[o * inner + c] = epilogue(${finish}, ${args}o * inner + c, 0);
        }
    }
}
""")


class ColumnReduceTemplate:
    name = "cpu.column_reduce"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        if not (isinstance(p, ColumnReduce) and p.kind in COLUMN_REDUCTIONS and p.inner >= 1):
            return False
        # One value per column: the epilogue may only use the value, numbers and scalar tensors.
        return (all(leaf.layout == "scalar" for leaf in leaves(p.epilogue or Value()))
                and _valid(analysis, [p.prologue, p.epilogue], value_ok=True))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, ColumnReduce)
        # Double accumulation is the default for sums, as in cpu.row_reduce; max and min need none.
        accumulate = {"accumulate": ("double", "float")} if p.kind in ("sum", "mean") else {}
        return {**accumulate, "tile": (256, 1024), "unroll": (False, True), **_math([p.prologue, p.epilogue])}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, ColumnReduce)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue])
        identity, combine, finish = _KINDS[p.kind]
        source = (_head(params) + kernel.helper("prologue", p.prologue)
                  + kernel.helper("epilogue", p.epilogue, with_value=True)
                  + _COLUMN.substitute(params=kernel.params, args=kernel.args, tile=int(params["tile"]),
                                       acc=params.get("accumulate", "float"), identity=identity, combine=combine,
                                       finish=finish))
        start, end = p.start, p.start + p.dims
        shape = f"{{x}}.shape[:{start}] + " + (f"(1,) * {p.dims} + " if p.keepdim else "") + f"{{x}}.shape[{end}:]"
        out = f"torch.empty({shape}, dtype={{x}}.dtype, device={{x}}.device)"
        sizes = f"{{x}}.shape[:{start}].numel(), {{x}}.shape[{start}:{end}].numel(), {{x}}.shape[{end}:].numel()"
        what = f"{p.kind} over dims {list(range(start, end))} of a {len(p.shape)}-D tensor"
        return kernel.candidate(source, "column_reduce", out, _doc(self.name, what, params), sizes)


TEMPLATES = [ColumnReduceTemplate()]
