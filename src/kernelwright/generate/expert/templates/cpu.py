"""CPU templates: C++ kernels (g++ -O3 -march=native, OpenMP) called through `kernelwright.backends.cpu`.

Every kernel walks rows (all dims but the last) and columns (the last dim), so a
"row" leaf is read at the column index, never through a modulo. Expressions
become `static inline` helpers (prologue: one element in; epilogue: the computed
value out) that g++ inlines into the loops, where `#pragma omp simd` vectorizes
them. Vectorizing needs vector math: libm's exp, erf and tanh are scalar calls,
so `math="vector"` (the default) brings branch-free polynomial versions.

Parameters: pointwise: schedule (OpenMP over tiles, with or without simd, or
serial), chunk (static schedule chunk, in elements); row reductions and norms:
threads_over (rows), accumulate (double or float, for sums), unroll (GCC's loop
unroller); all: math (vector or libm) where exp, log, erf or tanh is called.
fp32 only: other dtypes are left to the Triton templates.
"""

from __future__ import annotations

import math
import re
import textwrap
from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.templates import named_leaves
from kernelwright.generate.expert.patterns import (
    NORMALIZATIONS, REDUCTIONS, Analysis, Call, Const, Expr, Input, Norm, Pointwise, RowReduce, Value, Weight,
    leaves,
)

Leaf = Input | Weight

# -fno-math-errno and -fno-trapping-math let g++ vectorize sqrt and the selects (?:) of the helpers below;
# nothing here reads errno or traps on floating-point exceptions. kw_max/kw_min propagate NaN, as
# torch.maximum, clamp and relu do (std::fmax drops it).
_PRELUDE = r"""#pragma GCC optimize("no-math-errno", "no-trapping-math")
#include <cmath>
#include <cstdint>

static inline float kw_max(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float kw_min(float a, float b) { return (a < b || a != a) ? a : b; }
"""
# math="libm": the C library's functions, exact to an ulp but scalar (a call per element in every loop).
_LIBM = r"""static inline float kw_exp(float x) { return std::exp(x); }
static inline float kw_log(float x) { return std::log(x); }
static inline float kw_log1p(float x) { return std::log1p(x); }
static inline float kw_erf(float x) { return std::erf(x); }
static inline float kw_tanh(float x) { return std::tanh(x); }
"""
# math="vector": branch-free versions that `omp simd` vectorizes (Cephes' polynomials: exp and log
# within 2 ulp, tanh within 3; erf our own fit), the way PyTorch's own CPU kernels get vector math from Sleef.
# tests/test_cpu_vector_math.py holds each to its stated error.
_VECTOR = r"""static inline float kw_bits_float(int32_t i) { return __builtin_bit_cast(float, i); }
static inline int32_t kw_float_bits(float f) { return __builtin_bit_cast(int32_t, f); }

// e^x = 2^n e^r, |r| <= ln2 / 2; 2^n in two factors so that n = 128 (x near 88.72) fits the exponent.
static inline float kw_exp(float x) {
    const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
    const float xc = x < -87.3365f ? -87.3365f : (x > 88.7228f ? 88.7228f : x);
    const float t = xc * 1.44269504088896341f + shifter;
    const float n = t - shifter;
    const int32_t ni = kw_float_bits(t) - kw_float_bits(shifter), half = ni >> 1;
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const float y = p * kw_bits_float((half + 127) << 23) * kw_bits_float((ni - half + 127) << 23);
    return x > 88.7228f ? INFINITY : (x < -87.3365f ? 0.0f : (x != x ? x : y));
}

// log x = log m + e log 2, x = m 2^e with m in [sqrt(1/2), sqrt(2)); subnormals are scaled up first.
static inline float kw_log(float x) {
    const bool tiny = x < 1.17549435e-38f;
    const int32_t bits = kw_float_bits(tiny ? x * 8388608.0f : x);
    const float m0 = kw_bits_float((bits & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
    const bool low = m0 < 0.707106781186547524f;
    const float m = low ? m0 + m0 - 1.0f : m0 - 1.0f;
    const float e = static_cast<float>(((bits >> 23) & 0xff) - 126 - (low ? 1 : 0)) - (tiny ? 23.0f : 0.0f);
    const float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    const float y = m + (m * z * p + e * -2.12194440e-4f - 0.5f * z) + e * 0.693359375f;
    return x > 0.0f ? (x == INFINITY ? x : y) : (x == 0.0f ? -INFINITY : NAN);
}

// log(1 + x), corrected by the rounding error of 1 + x so that a small x keeps its digits.
static inline float kw_log1p(float x) {
    const float u = 1.0f + x, d = u - 1.0f;
    return d == 0.0f || u == INFINITY ? x : kw_log(u) * (x / d);
}

// erf: x P(x^2) below 1 (relative error 2.2e-7); from 1 to 4 a polynomial in |x| - 2.5 (absolute error
// 1e-7), with x's sign; from 4 on, 1 (as erf rounds to in float). Least-squares fits on Chebyshev nodes,
// errors measured in float: 17 multiply-adds, no division and no exponential (Abramowitz & Stegun 7.1.26,
// which PyTorch's vectorized erf uses, takes both: a GELU's erf was most of its C++ kernel's time).
static inline float kw_erf(float x) {
    const float a = std::fabs(x), z = x * x, u = (a > 4.0f ? 4.0f : a) - 2.5f;  // a NaN stays NaN
    float q = -5.65410592e-4f;
    q = q * z + 4.92327753e-3f;
    q = q * z - 2.6716385e-2f;
    q = q * z + 1.12803645e-1f;
    q = q * z - 3.76123488e-1f;
    q = q * z + 1.12837911f;
    float r = -8.70944041e-6f;
    r = r * u + 2.14060092e-5f;
    r = r * u + 5.9413811e-5f;
    r = r * u - 2.80871929e-4f;
    r = r * u + 2.91999429e-4f;
    r = r * u + 5.74202684e-4f;
    r = r * u - 2.82375421e-3f;
    r = r * u + 6.10002549e-3f;
    r = r * u - 8.6127799e-3f;
    r = r * u + 8.35432485e-3f;
    r = r * u - 5.44707011e-3f;
    r = r * u + 2.17797933e-3f;
    r = r * u + 9.99593079e-1f;
    return a < 1.0f ? x * q : std::copysign(a >= 4.0f ? 1.0f : r, x);
}

// tanh: Cephes' odd polynomial below 0.625; above, 1 - 2 / (e^2|x| + 1) has no cancellation.
static inline float kw_tanh(float x) {
    const float a = std::fabs(x), z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    return std::copysign(a < 0.625f ? p * z * a + a : 1.0f - 2.0f / (kw_exp(2.0f * a) + 1.0f), x);  // -0 stays -0
}
"""

# op -> C++ for already-evaluated operands (temporaries, literals or plain loads, so repeating one is free).
_UNARY = {
    "neg": "-{0}", "abs": "std::fabs({0})", "exp": "kw_exp({0})", "log": "kw_log({0})",
    "sqrt": "std::sqrt({0})", "rsqrt": "1.0f / std::sqrt({0})", "reciprocal": "1.0f / {0}",
    "square": "{0} * {0}", "sigmoid": "1.0f / (1.0f + kw_exp(-{0}))", "tanh": "kw_tanh({0})",
    "relu": "kw_max({0}, 0.0f)", "silu": "{0} / (1.0f + kw_exp(-{0}))",
    "gelu": "0.5f * {0} * (1.0f + kw_erf({0} * 0.70710678118654752f))",
    # PyTorch's approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    "gelu_tanh": "0.5f * {0} * (1.0f + kw_tanh(0.79788456080286536f * ({0} + 0.044715f * {0} * {0} * {0})))",
    "erf": "kw_erf({0})", "sin": "std::sin({0})", "cos": "std::cos({0})",
    # PyTorch's softplus (beta 1, threshold 20): exp cannot overflow below the threshold.
    "softplus": "({0} > 20.0f ? {0} : kw_log1p(kw_exp({0})))",
}
_BINARY = {
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
    "maximum": "kw_max({0}, {1})", "minimum": "kw_min({0}, {1})", "pow": "std::pow({0}, {1})",
    "leaky_relu": "({0} > 0.0f ? {0} : {0} * {1})",
}
_TRANSCENDENTAL = {"exp", "log", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "erf", "softplus"}
# Exponents torch's pow turns into multiplications or a root; so do we, for speed and the same rounding.
_POWERS = {2.0: "{0} * {0}", 3.0: "{0} * {0} * {0}", 0.5: "std::sqrt({0})", 1.0: "{0}", -1.0: "1.0f / {0}"}
SUPPORTED_OPS = frozenset(_UNARY) | frozenset(_BINARY) | {"clamp"}
_SUM_LIKE = ("sum", "mean", "logsumexp", "softmax", "log_softmax")  # the kinds that accumulate a sum


def _literal(value: float) -> str:
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    text = repr(float(value)) + "f"
    return f"({text})" if value < 0 else text  # `-x` of a negative literal must not read as `--`


class _Kernel:
    """The tensor leaves of a pattern: their C names and loads, and the helpers built over them."""

    def __init__(self, analysis: Analysis, exprs: list[Expr | None]) -> None:
        self.analysis = analysis
        self.names = named_leaves(exprs)
        self.leaves: list[Leaf] = list(self.names)
        self.params = "".join(f"const float* __restrict {self.names[leaf]}, " for leaf in self.leaves)
        self.args = "".join(f"{self.names[leaf]}, " for leaf in self.leaves)

    def load(self, leaf: Leaf) -> str:
        index = {"full": "i", "row": "c", "scalar": "0"}[leaf.layout]
        return f"{self.names[leaf]}[{index}]"

    def helper(self, name: str, expr: Expr | None, with_value: bool = False) -> str:
        """`static inline float name([value, ]leaves..., i, c)`: i the flat index, c the column."""
        lines: list[str] = []

        def emit(e: Expr) -> str:
            if isinstance(e, Const):
                return _literal(e.value)
            if isinstance(e, Value):
                return "value"
            if isinstance(e, (Input, Weight)):
                return self.load(e)
            args = [emit(a) for a in e.args]
            if e.op == "pow" and isinstance(e.args[1], Const) and float(e.args[1].value) in _POWERS:
                code = _POWERS[float(e.args[1].value)].format(args[0])
            elif e.op == "clamp":  # an infinite bound is no bound
                code = args[0]
                if not (isinstance(e.args[1], Const) and e.args[1].value == -math.inf):
                    code = f"kw_max({code}, {args[1]})"
                if not (isinstance(e.args[2], Const) and e.args[2].value == math.inf):
                    code = f"kw_min({code}, {args[2]})"
            else:
                code = (_UNARY | _BINARY)[e.op].format(*args)
            lines.append(f"    const float t{len(lines)} = {code};")
            return f"t{len(lines) - 1}"

        result = "value" if expr is None else emit(expr)
        value = "float value, " if with_value else ""
        body = "\n".join([*lines, f"    return {result};"])
        return f"static inline float {name}({value}{self.params}long i, long c) {{\n{body}\n}}\n"

    def candidate(self, source: str, call: str, out: str, doc: str, sizes: str = "{x}.numel(), kw_cols") -> str:
        """The candidate file around the C++ `source`: imports, SOURCE, `ModelNew` whose forward calls `call`.

        `out` allocates the output, written over `{x}`: the first full-layout tensor, which sizes the call.
        `sizes`, the call's arguments after the output, likewise (kw_cols is {x}'s last dim)."""
        a = self.analysis
        full = [leaf for leaf in self.leaves if leaf.layout == "full"]
        main = next((leaf for leaf in full if isinstance(leaf, Input)), full[0])  # an input rather than a weight
        lines, values = [], {}
        for leaf in self.leaves:
            if isinstance(leaf, Input):
                arg = a.forward_args[leaf.index]
                lines.append(f"{arg} = {arg}.contiguous()")
                values[leaf] = arg
            else:
                lines.append(f"kw_{self.names[leaf]} = self.{leaf.name}.contiguous()")
                values[leaf] = f"kw_{self.names[leaf]}"
        x = values[main]
        if "kw_cols" in sizes:
            lines.append(f"kw_cols = {x}.shape[-1] if {x}.dim() else 1")
        lines.append("kw_out = " + out.format(x=x))
        tensors = "".join(f"{values[leaf]}, " for leaf in self.leaves)
        lines.append(f"lib.{call}({tensors}kw_out, {sizes.format(x=x)})")
        lines.append("return kw_out")
        init = textwrap.dedent(a.init_source).strip()  # the analysis made super() plain
        body = textwrap.indent("\n".join(lines), " " * 8)
        return (f'"""{doc}"""\n{a.imports.strip()}\nimport torch\nimport torch.nn as nn\n\n'
                f"from kernelwright.backends import cpu\n\nSOURCE = r\"\"\"\n{source}\"\"\"\n"
                f"lib = cpu.compile(SOURCE)\n\n\nclass ModelNew(nn.Module):\n{textwrap.indent(init, ' ' * 4)}\n\n"
                f"    def forward(self, {', '.join(a.forward_args)}):\n{body}\n")


def _valid(analysis: Analysis, exprs: list[Expr | None], value_ok: bool = False) -> bool:
    """Whether these expressions use only ops and leaves the helpers can write, with a full leaf to size by."""
    def ok(e: Expr) -> bool:
        if isinstance(e, Call):
            return e.op in SUPPORTED_OPS and all(ok(arg) for arg in e.args)
        if isinstance(e, Input):
            return 0 <= e.index < len(analysis.forward_args) and e.layout in ("full", "row", "scalar")
        if isinstance(e, Weight):
            return e.layout in ("full", "row", "scalar")
        return isinstance(e, Const) or (value_ok and isinstance(e, Value))

    main = exprs[0]
    return (analysis.pattern.dtype == "float32" and main is not None
            and any(leaf.layout == "full" for leaf in leaves(main))
            and all(ok(e) for e in exprs if e is not None))


def _tidy(text: str) -> str:
    """Drop the blank lines that empty template slots leave."""
    return re.sub(r"\n[ \t]*(?=\n)", "", text)


def _doc(name: str, what: str, params: dict[str, Any]) -> str:
    return f"{name}: {what}; " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."


def _loop(pragma: str = "#pragma omp simd") -> str:
    """A pragma line over the inner loop that follows it, in the row bodies' indentation."""
    return f"{pragma}\n        "


def _head(params: dict[str, Any]) -> str:
    """Pragmas, includes and the math helpers the parameters ask for."""
    # unroll: GCC's loop unroller for the whole file (`#pragma GCC unroll N` cannot share a loop with `omp simd`).
    unroll = '#pragma GCC optimize("unroll-loops")\n' if params.get("unroll") else ""
    return unroll + _PRELUDE + {"vector": _VECTOR, "libm": _LIBM}.get(params.get("math", ""), "") + "\n"


def _math(exprs: list[Expr | None], kind: str = "") -> dict[str, tuple[Any, ...]]:
    """The `math` parameter, for patterns that call exp, log, erf or tanh (vector first: it is faster)."""
    def calls(e: Expr | None) -> bool:
        return isinstance(e, Call) and (e.op in _TRANSCENDENTAL or any(calls(a) for a in e.args))

    uses = kind in ("logsumexp", "softmax", "log_softmax") or any(calls(e) for e in exprs)
    return {"math": ("vector", "libm")} if uses else {}


# --------------------------------------------------------------------------------------------------

_POINTWISE = _Text(r"""
extern "C" void pointwise(${params}float* __restrict out, long n, long cols) {
    if (n == 0) return;
    ${flat}
    // Tiles of at most 2048 columns of one row: row leaves are read at c, long rows still
    // split across threads, and the chunk (in elements) becomes a number of tiles.
    const long tile = cols < 2048 ? cols : 2048;
    const long per_row = (cols + tile - 1) / tile;
    const long tiles = (n / cols) * per_row;
    ${chunk}
    ${outer}
    for (long t = 0; t < tiles; ++t) {
        const long base = (t / per_row) * cols;
        const long c0 = (t % per_row) * tile;
        const long c1 = c0 + tile < cols ? c0 + tile : cols;
        ${inner}for (long c = c0; c < c1; ++c) out[base + c] = prologue(${args}base + c, c);
    }
}
""")


class PointwiseTemplate:
    name = "cpu.pointwise"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        return isinstance(analysis.pattern, Pointwise) and _valid(analysis, [analysis.pattern.expr])

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        assert isinstance(analysis.pattern, Pointwise)
        return {"schedule": ("parallel_simd", "parallel", "serial"), "chunk": (0, 4096, 16384),
                **_math([analysis.pattern.expr])}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        pattern = analysis.pattern
        assert isinstance(pattern, Pointwise)
        kernel = _Kernel(analysis, [pattern.expr])
        schedule, chunk = params["schedule"], int(params["chunk"])
        outer = "" if schedule == "serial" else (
            "#pragma omp parallel for " + ("schedule(static, chunk)" if chunk else "schedule(static)"))
        # Without per-column leaves the whole tensor is one row: tiles then ignore row ends.
        by_row = any(leaf.layout == "row" for leaf in kernel.leaves)
        source = _head(params) + kernel.helper("prologue", pattern.expr) + _tidy(_POINTWISE.substitute(
            params=kernel.params, args=kernel.args, outer=outer,
            chunk=f"const long chunk = {chunk} / tile > 0 ? {chunk} / tile : 1;" if chunk else "",
            flat="" if by_row else "cols = n;  // no per-column leaf: one long row",
            inner="#pragma omp simd\n        " if schedule == "parallel_simd" else ""))
        return kernel.candidate(source, "pointwise", "torch.empty_like({x})", _doc(self.name, "elementwise", params))


# --------------------------------------------------------------------------------------------------

_ROWS = _Text(r"""
extern "C" void ${name}(${params}${out_t}* __restrict out, long n, long cols) {
    if (n == 0) return;
    const long rows = n / cols;
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; ++r) {
        const long base = r * cols;
${body}
    }
}
""")

# Row bodies, by kind. ${v} is the prologue at column c; ${acc} the accumulator type; ${loop} the simd pragmas.
_MAX_LOOP = """        float m = -INFINITY;
        ${loop_max}for (long c = 0; c < cols; ++c) { const float v = ${v}; m = v > m ? v : m; }
"""
_EXTREME = """        float m = ${init};
        int nans = 0;
        ${loop_${op}nan}for (long c = 0; c < cols; ++c) { const float v = ${v}; m = v ${cmp} m ? v : m; nans |= v != v; }
        out[r] = epilogue(nans ? NAN : m, ${args}r, 0);"""
# First index of the extreme (strict comparison keeps the first); a NaN counts as the extreme, as in torch.
_ARG_EXTREME = """        float best = 0.0f;
        int64_t index = -1;
        for (long c = 0; c < cols; ++c) {
            const float v = ${v};
            if (index < 0 || v ${cmp} best || (v != v && best == best)) { best = v; index = c; }
        }
        out[r] = index;"""
_BODIES = {
    "sum": """        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) s += ${v};
        out[r] = epilogue(static_cast<float>(s), ${args}r, 0);""",
    "mean": """        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) s += ${v};
        out[r] = epilogue(static_cast<float>(s / cols), ${args}r, 0);""",
    # The simd max/min reductions skip NaNs; torch's return NaN, so NaNs are counted on the side.
    "max": _EXTREME.replace("${op}", "max").replace("${init}", "-INFINITY").replace("${cmp}", ">"),
    "min": _EXTREME.replace("${op}", "min").replace("${init}", "INFINITY").replace("${cmp}", "<"),
    # As torch: an infinite max is not subtracted (inf - inf would be NaN); a NaN reaches the sum.
    "logsumexp": _MAX_LOOP + """        const float shift = std::isinf(m) ? 0.0f : m;
        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) s += kw_exp(${v} - shift);
        out[r] = epilogue(static_cast<float>(std::log(s) + shift), ${args}r, 0);""",
    "argmax": _ARG_EXTREME.replace("${cmp}", ">"),
    "argmin": _ARG_EXTREME.replace("${cmp}", "<"),
    # Three passes over a row that stays in cache: max, exp and its sum (kept in y), scale.
    "softmax": _MAX_LOOP + """        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) { const float e = kw_exp(${v} - m); y[c] = e; s += e; }
        const float inv = static_cast<float>(1 / s);
        ${loop}for (long c = 0; c < cols; ++c) y[c] = epilogue(y[c] * inv, ${args}base + c, c);""",
    "log_softmax": _MAX_LOOP + """        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) { const float t = ${v} - m; y[c] = t; s += kw_exp(t); }
        const float lse = static_cast<float>(std::log(s));
        ${loop}for (long c = 0; c < cols; ++c) y[c] = epilogue(y[c] - lse, ${args}base + c, c);""",
    "layer": """        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) s += ${v};
        const ${acc} mean = s / cols;
        ${acc} q = 0;
        ${loop_q}for (long c = 0; c < cols; ++c) { const ${acc} d = ${v} - mean; q += d * d; }
        const float mu = static_cast<float>(mean);
        const float rstd = static_cast<float>(1 / std::sqrt(q / cols + static_cast<${acc}>(${eps})));
        ${loop}for (long c = 0; c < cols; ++c) y[c] = epilogue((${v} - mu) * rstd${affine}, ${args}base + c, c);""",
    "rms": """        ${acc} s = 0;
        ${loop_sum}for (long c = 0; c < cols; ++c) { const ${acc} v = ${v}; s += v * v; }
        const float rstd = static_cast<float>(1 / std::sqrt(s / cols + static_cast<${acc}>(${eps})));
        ${loop}for (long c = 0; c < cols; ++c) y[c] = epilogue(${v} * rstd${affine}, ${args}base + c, c);""",
}


def _row_source(kernel: _Kernel, name: str, kind: str, prologue: Expr, epilogue: Expr | None,
                params: dict[str, Any], out_t: str = "float", eps: float = 0.0, affine: str = "") -> str:
    """The C++ for one row-wise kernel: prelude, helpers, and the kind's body inside the row loop."""
    same_shape = kind in NORMALIZATIONS or kind in ("layer", "rms")
    body = _BODIES[kind]
    v = f"prologue({kernel.args}base + c, c)"
    if same_shape:  # the output row y doubles as scratch space
        head = "        float* __restrict y = out + base;\n"
        # A computed prologue (a residual add, say) is evaluated once into y; later passes read it there.
        if isinstance(prologue, Call):
            head += f"        {_loop()}for (long c = 0; c < cols; ++c) y[c] = {v};\n"
            v = "y[c]"
        body = head + body
    text = _Text(body).substitute(
        v=v, args=kernel.args, acc=params.get("accumulate", "float"), eps=repr(float(eps)), affine=affine,
        loop=_loop(), loop_sum=_loop("#pragma omp simd reduction(+:s)"),
        loop_q=_loop("#pragma omp simd reduction(+:q)"), loop_max=_loop("#pragma omp simd reduction(max:m)"),
        loop_maxnan=_loop("#pragma omp simd reduction(max:m) reduction(|:nans)"),
        loop_minnan=_loop("#pragma omp simd reduction(min:m) reduction(|:nans)"))
    return (_head(params) + kernel.helper("prologue", prologue)
            + kernel.helper("epilogue", epilogue, with_value=True)
            + _ROWS.substitute(name=name, params=kernel.params, out_t=out_t, body=text))


def _row_space(sums: bool, per_element: bool = False) -> dict[str, tuple[Any, ...]]:
    # Double accumulation first where the sum is the result (sum, mean): closer to torch's cascaded fp32 sums
    # than the simd loop's 8 float lanes. Float first where the sums only scale every element (softmax,
    # log-softmax, logsumexp, norms): a double sum halves the vector width of its loop. On a 2-core EPYC: a
    # masked softmax over 1024 x 1024, 0.79 ms in float against 1.09 ms in double (eager 1.25 ms); layer and
    # RMS norms 3-14 % faster in float, their largest error 1e-6 either way.
    accumulate = {"accumulate": ("float", "double") if per_element else ("double", "float")} if sums else {}
    return {"threads_over": ("rows",), **accumulate, "unroll": (False, True)}


class RowReduceTemplate:
    name = "cpu.row_reduce"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        if not isinstance(p, RowReduce) or p.kind not in _BODIES or p.dims != 1:
            return False
        if p.kind in REDUCTIONS and p.epilogue is not None:
            # One value per row: the epilogue may only use the value, numbers and scalar tensors.
            if p.kind in ("argmax", "argmin") or any(leaf.layout != "scalar" for leaf in leaves(p.epilogue)):
                return False
        return _valid(analysis, [p.prologue, p.epilogue], value_ok=True)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, RowReduce)
        return {**_row_space(p.kind in _SUM_LIKE, p.kind in ("softmax", "log_softmax", "logsumexp")),
                **_math([p.prologue, p.epilogue], p.kind)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, RowReduce)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue])
        index = p.kind in ("argmax", "argmin")
        source = _row_source(kernel, f"row_{p.kind}", p.kind, p.prologue, p.epilogue, params,
                             out_t="int64_t" if index else "float")
        dtype = "torch.int64" if index else "{x}.dtype"
        if p.kind in NORMALIZATIONS:
            out = "torch.empty_like({x})"
        else:
            shape = "{x}.shape[:-1] + (1,)" if p.keepdim else "{x}.shape[:-1]"
            out = f"torch.empty({shape}, dtype={dtype}, device={{x}}.device)"
        return kernel.candidate(source, f"row_{p.kind}", out, _doc(self.name, f"{p.kind} over the last dim", params))


class NormTemplate:
    name = "cpu.norm"
    backend = "cpu"

    def matches(self, analysis: Analysis) -> bool:
        p = analysis.pattern
        return (isinstance(p, Norm) and p.kind in ("layer", "rms") and (p.bias is None or p.kind == "layer") and p.dims == 1
                and p.outputs == ("value",)
                and all(w is None or w.layout in ("row", "scalar", "full") for w in (p.weight, p.bias))
                and _valid(analysis, [p.prologue, p.epilogue], value_ok=True))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Norm)
        return {**_row_space(True, per_element=True), **_math([p.prologue, p.epilogue])}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Norm)
        kernel = _Kernel(analysis, [p.prologue, p.epilogue, p.weight, p.bias])
        affine = "".join(f" {op} {kernel.load(w)}" for op, w in (("*", p.weight), ("+", p.bias)) if w is not None)
        affine = affine.replace("[i]", "[base + c]")  # a full-layout weight, read at the element
        source = _row_source(kernel, f"{p.kind}_norm", p.kind, p.prologue, p.epilogue, params,
                             eps=p.eps, affine=affine)
        return kernel.candidate(source, f"{p.kind}_norm", "torch.empty_like({x})",
                              _doc(self.name, f"{p.kind} norm over the last dim, eps={p.eps}", params))


TEMPLATES = [PointwiseTemplate(), RowReduceTemplate(), NormTemplate()]
