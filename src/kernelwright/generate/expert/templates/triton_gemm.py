"""Triton templates for matrix products (the Matmul pattern): a tiled GEMM, and a GEMV for thin products.

triton.gemm: each program computes a BLOCK_M x BLOCK_N tile of the output with tl.dot over
BLOCK_K-wide slices of K, accumulating in fp32 whatever the input dtype. Programs take the tiles in
groups of GROUP_M row blocks, so programs running at the same time share the rows of a and the
columns of b they read through L2. The bias and the epilogue are applied to the fp32 accumulator, and
the result is written in the input dtype; a 16-bit product (bias added) and each epilogue op are rounded
to it where the reference stores them. For long K and few output tiles (SPLIT_K > 1), the K
range is split over SPLIT_K programs per tile, each writing its fp32 partial tile to a workspace, and
a second kernel sums the partials in a fixed order (deterministic, unlike atomic adds) and applies
the bias and the epilogue.

Precision: fp32 tasks multiply in IEEE fp32 (tl.dot's input_precision="ieee") unless the task's
tolerance admits less: the `precision` parameter lists only what the task admits, fastest first
("tf32" on the tensor cores, or operands rounded to "bf16"/"fp16"). bf16 and fp16 tasks use the
tensor cores natively.

triton.gemv: for thin products (M <= 16, a decoding step) reading b is all the work. Each program
reads a BLOCK_N x BLOCK_K slice of b per step and multiplies it with BLOCK_M rows of a elementwise in
fp32, summing over K once after the loop; tensor cores would gain nothing.

Parameters: gemm: BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages, SPLIT_K (where the
task's shape leaves SMs idle), precision (fp32 tasks); gemv: BLOCK_M, BLOCK_N, BLOCK_K, num_warps,
num_stages. Shapes are read from the tensors at run time (shape variants change them); the task's
shape only chooses the defaults.
"""

from __future__ import annotations

import math
import textwrap
from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import Analysis, Call, Const, Expr, Input, Matmul, Value, Weight, leaves
from kernelwright.generate.expert.templates._emit import Emitter

Leaf = Input | Weight
_SMS = 132  # streaming multiprocessors of an H100 / H200: fewer output tiles than this leave some idle

# op -> Triton over already-evaluated fp32 operands (temporaries or literals, so repeating one is free).
# tanh as 1 - 2 / (e^2x + 1): exact at both ends, an absolute error near 1e-7 around 0. maximum,
# minimum, clamp and relu propagate NaN as torch's do.
_TANH = "(1.0 - 2.0 / (tl.exp(2.0 * {0}) + 1.0))"
_OPS = {
    "neg": "-{0}", "abs": "tl.abs({0})", "exp": "tl.exp({0})", "log": "tl.log({0})", "sqrt": "tl.sqrt({0})",
    "rsqrt": "tl.rsqrt({0})", "reciprocal": "1.0 / {0}", "square": "{0} * {0}", "sigmoid": "tl.sigmoid({0})",
    "tanh": _TANH, "relu": "tl.where({0} < 0.0, 0.0, {0})", "silu": "{0} * tl.sigmoid({0})",
    "gelu": "0.5 * {0} * (1.0 + tl.erf({0} * 0.7071067811865476))",
    # PyTorch's approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    "gelu_tanh": "0.5 * {0} * (1.0 + " + _TANH.format("(0.7978845608028654 * ({0} + 0.044715 * {0} * {0} * {0}))")
                 + ")",
    "erf": "tl.erf({0})", "sin": "tl.sin({0})", "cos": "tl.cos({0})",
    # PyTorch's softplus (beta 1, threshold 20): exp cannot overflow below the threshold.
    "softplus": "tl.where({0} > 20.0, {0}, tl.log(1.0 + tl.exp({0})))",
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
    "maximum": "tl.maximum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
    "minimum": "tl.minimum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
    "leaky_relu": "tl.where({0} > 0.0, {0}, {0} * {1})",
}
_BY_CONST = ("pow", "clamp")  # written by _special, for constant exponents and bounds only
# 16-bit operand types for tl.dot, by precision (task dtype or the fp32 task's `precision` parameter).
_DOT_TYPES = {"bfloat16": "tl.bfloat16", "float16": "tl.float16", "bf16": "tl.bfloat16", "fp16": "tl.float16"}
# What an fp32 task may multiply in, fastest first, by the lowest precision its tolerance admits.
_FP32_PRECISIONS = {"tf32": ("tf32", "ieee"), "fp16": ("fp16", "tf32", "ieee"), "bf16": ("bf16", "tf32", "ieee")}


def _literal(value: float) -> str:
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '(-float("inf"))'
    return f"({value!r})" if value < 0 else repr(value)  # `-x` of a negative literal must not read `--`


def _special(call: Call, args: list[str]) -> str | None:
    """pow by a constant exponent (as multiplications where it is a small integer) and clamp by constant bounds."""
    if call.op == "clamp":  # an infinite bound is no bound
        code = args[0]
        for bound, op in ((call.args[1], "maximum"), (call.args[2], "minimum")):
            if not math.isinf(bound.value):
                code = _OPS[op].format(code, _literal(bound.value))
        return code
    if call.op == "pow":
        exponent = call.args[1].value
        if exponent == 0.5:
            return f"tl.sqrt({args[0]})"
        if exponent == int(exponent):
            product = " * ".join([args[0]] * abs(int(exponent)))
            return product if exponent > 0 else f"1.0 / ({product})"
        return f"tl.exp({_literal(exponent)} * tl.log({args[0]}))"  # NaN for a negative base, as torch's
    return None


def _supported(expr: Expr | None) -> bool:
    """Whether the epilogue's ops can be written: table ops, and pow and clamp with constant operands."""
    if expr is None or isinstance(expr, (Const, Value, Input, Weight)):
        return True
    if expr.op in _BY_CONST:
        constants = [a for a in expr.args[1:] if isinstance(a, Const)]
        if len(constants) != len(expr.args) - 1:
            return False
        if expr.op == "pow" and (e := constants[0].value) == int(e) and not 1 <= abs(e) <= 8:
            return False  # x^0 is 1 even for NaN, and long products lose digits: not written
    elif expr.op not in _OPS:
        return False
    return all(_supported(a) for a in expr.args)


def _pow2(x: int, low: int, high: int) -> int:
    """The power of two at least x, within [low, high]."""
    return min(high, max(low, 1 << max(0, x - 1).bit_length()))


def _first(value: Any, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """`values` with `value` first: the default."""
    return (value, *[v for v in values if v != value])


def _valid(analysis: Analysis) -> bool:
    """Whether a Matmul's dtype, epilogue ops and tensors are ones the templates write."""
    p = analysis.pattern
    tensors = [p.a, p.b, *(leaves(p.epilogue) if p.epilogue is not None else [])]
    return (p.dtype in ("float32", "bfloat16", "float16") and _supported(p.epilogue)
            and (p.bias is None or p.bias.layout == "row")
            and all(t.index < len(analysis.forward_args) for t in tensors if isinstance(t, Input))
            and all(t.layout in ("full", "row", "scalar") for t in tensors))


# A bf16 rounding to nearest even, by the bits: Triton's CPU interpreter truncates in .to(tl.bfloat16), which
# the GPU does not; done by hand, both agree with PyTorch bit for bit.
_ROUND_BF16 = """
@triton.jit
def kw_round_bf16(x):
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.to(tl.float32, bitcast=True)
"""
# How an fp32 value is rounded to what the reference stores, per dtype (fp32: as it is).
_STORED = {"bfloat16": "kw_round_bf16({code})", "float16": "({code}).to(tl.float16).to(tl.float32)",
           "float32": "{code}"}


class _Tensors:
    """The bias and the epilogue's leaves: kernel parameters, their loads, and the forward's tensors.

    A vector leaf (the bias; a leaf of layout `vector`: "row" in a matrix product, "broadcast", one value
    per output channel, in a convolution) is read at the index `finish` is given; a "full" one at the
    output's offsets; anything else is a scalar."""

    def __init__(self, analysis: Analysis, vector: str = "row", round_each_op: bool = True) -> None:
        p = analysis.pattern
        self.epilogue = p.epilogue
        self.vector = vector
        # A matrix product's reference stores the product (bias added) and each epilogue op in its dtype: a
        # 16-bit kernel rounds at the same points, not once at the end (round_each_op). A convolution's
        # epilogue is mostly batch norm, one fused op of the reference's that rounds once, at the end, as
        # the store's cast does. The rounding helper goes before the kernels.
        self.stored = _STORED[p.dtype] if round_each_op else "{code}"
        self.helpers = _ROUND_BF16 if p.dtype == "bfloat16" and round_each_op else ""
        self.names: dict[Leaf, str] = {}
        for leaf in leaves(p.epilogue) if p.epilogue is not None else []:
            weights = sum(isinstance(k, Weight) for k in self.names)
            name = f"in{leaf.index}" if isinstance(leaf, Input) else f"w{weights}"
            # The same input under two layouts (rare) is two parameters of one tensor.
            self.names[leaf] = f"{name}_{leaf.layout}" if name in self.names.values() else name
        self.bias = p.bias
        ptrs = ["bias", *self.names.values()] if p.bias is not None else list(self.names.values())
        self.params = "".join(f"{name}_ptr, " for name in ptrs)
        self.args = "".join(f"kw_{name}, " for name in ptrs)
        self.lines = [f"kw_bias = self.{p.bias.name}.contiguous()"] if p.bias is not None else []
        # Contiguous: a full leaf is read at the output's offsets; a per-channel one ([K], [K, 1, 1] or
        # [1, K, 1, 1]: the same flat order) at the channel's index.
        for leaf, name in self.names.items():
            source = analysis.forward_args[leaf.index] if isinstance(leaf, Input) else f"self.{leaf.name}"
            self.lines.append(f"kw_{name} = {source}.contiguous()")

    def finish(self, index: str, index_mask: str | None, indent: int = 4) -> str:
        """Kernel lines from `acc` (fp32) and `offs`/`mask` (the output's) to the store: bias, epilogue, cast.

        `index` indexes the vector leaves where the kernel stands (masked by `index_mask`, if any)."""
        at_index = index + (f", mask={index_mask}, other=0.0" if index_mask else "")
        where = {"full": "offs, mask=mask, other=0.0", self.vector: at_index}

        def load(name: str, layout: str) -> str:
            return f"tl.load({name}_ptr" + (f" + {where[layout]})" if layout in where else ")") + ".to(tl.float32)"

        lines = [f"value = acc + {load('bias', self.vector)}" if self.bias is not None else "value = acc"]
        result = "value"
        if self.stored != "{code}":
            lines.append("value = " + self.stored.format(code="value"))
        if self.epilogue is not None:
            emitter = Emitter(_OPS, _literal, lambda leaf: load(self.names[leaf], leaf.layout), special=_special,
                              rounded=self.stored)
            body, result = emitter.emit(self.epilogue, "t")
            lines += body
        lines.append(f"tl.store(out_ptr + offs, {result}.to(out_ptr.dtype.element_ty), mask=mask)")
        return textwrap.indent("\n".join(lines), " " * indent)


def _operands(analysis: Analysis) -> tuple[list[str], str, str]:
    """The forward's setup of a, b and the output: (lines, the kernels' size and stride arguments, a's name)."""
    p = analysis.pattern
    a = analysis.forward_args[p.a.index]
    b = analysis.forward_args[p.b.index] if isinstance(p.b, Input) else f"self.{p.b.name}"
    # Strides say where b's K and N run, so a transposed b (nn.Linear's weight) is read in place.
    if p.batched:
        k_dim, n_dim = (2, 1) if p.b_transposed else (1, 2)
        lines = [f"kw_a = {a}.reshape(-1, {a}.shape[-2], {a}.shape[-1])",
                 f"kw_b = {b}.reshape(-1, {b}.shape[-2], {b}.shape[-1])", "kw_z, kw_m, kw_k = kw_a.shape"]
        strides = "kw_a.stride(0), kw_a.stride(1), kw_a.stride(2), kw_b.stride(0)"
    else:  # a's leading dims are all rows
        k_dim, n_dim = (1, 0) if p.b_transposed else (0, 1)
        lines = [f"kw_a = {a}.reshape(-1, {a}.shape[-1])", f"kw_b = {b}", "kw_z = 1", "kw_m, kw_k = kw_a.shape"]
        strides = "0, kw_a.stride(0), kw_a.stride(1), 0"
    lines += [f"kw_n = kw_b.shape[{n_dim}]",
              f"kw_out = torch.empty({a}.shape[:-1] + (kw_n,), dtype={a}.dtype, device={a}.device)"]
    return lines, f"kw_m, kw_n, kw_k, {strides}, kw_b.stride({k_dim}), kw_b.stride({n_dim})", a


def _candidate(analysis: Analysis, kernels: str, forward: list[str], doc: str, widen: bool = False,
               returns: str = "kw_out") -> str:
    """The candidate file: imports, kernels, and ModelNew (the task's __init__) whose forward runs `forward`
    and returns `returns`."""
    # The task's imports first (its __init__ may need them), then ours that it lacks.
    own = ["import os"] * widen + ["import torch", "import torch.nn as nn", "import triton",
                                   "import triton.language as tl"]
    imports = [analysis.imports.strip(), *(line for line in own if line not in analysis.imports.splitlines())]
    flag = ("\n# Triton's interpreter (TRITON_INTERPRET=1, no GPU) multiplies bfloat16 tiles as their raw 16-bit\n"
            "# patterns; there bf16 operands are widened to fp32 before tl.dot (exact products, the same sums).\n"
            'WIDEN_BF16 = os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on", "yes")\n'
            if widen else "")
    init = textwrap.indent(textwrap.dedent(analysis.init_source).strip(), " " * 4)
    body = textwrap.indent("\n".join([*forward, f"return {returns}"]), " " * 8)
    return (f'"""{doc}"""\n' + "\n".join(filter(None, imports)) + f"\n{flag}\n{kernels}\n\n"
            f"class ModelNew(nn.Module):\n{init}\n\n"
            f"    def forward(self, {', '.join(analysis.forward_args)}):\n{body}\n")


def _doc(name: str, p: Matmul, params: dict[str, Any]) -> str:
    what = f"{'batched ' if p.batched else ''}{p.dtype} matrix product{' + bias' if p.bias else ''}" + (
        " + epilogue" if p.epilogue is not None else "")
    return f"{name}: {what}; " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."


def _kwargs(params: dict[str, Any], names: tuple[str, ...]) -> str:
    return ", ".join(f"{k}={params[k]}" for k in names)


# -- the tiled GEMM ---------------------------------------------------------------------------------

_GEMM = _Text('''
@triton.jit
def kw_gemm(a_ptr, b_ptr, out_ptr, ${params}M, N, K, stride_az, stride_am, stride_ak, stride_bz, stride_bk,
            stride_bn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
            GROUP_M: tl.constexpr${constexprs}):
    # Grouped order: the GROUP_M row blocks of a group take each column block in turn, so programs
    # running together read the same rows of a and columns of b, from L2.
    pid = tl.program_id(0)
    z = tl.program_id(1).to(tl.int64)
    group = GROUP_M * tl.cdiv(N, BLOCK_N)
    first_m = pid // group * GROUP_M
    group_m = tl.minimum(tl.cdiv(M, BLOCK_M) - first_m, GROUP_M)
    pid_m = first_m + pid % group % group_m
    pid_n = pid % group // group_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
${k_range}
    a_ptrs = a_ptr + z * stride_az + offs_m[:, None].to(tl.int64) * stride_am + (k_start + offs_k)[None, :] * stride_ak
    b_ptrs = b_ptr + z * stride_bz + (k_start + offs_k)[:, None] * stride_bk + offs_n[None, :].to(tl.int64) * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(k_start, k_end, BLOCK_K):
        mask_k = offs_k < k_end - k
        a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
${dot}
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    mask = mask_m[:, None] & mask_n[None, :]
${store}
''')
_WHOLE_K = "    k_start = 0\n    k_end = K"
# SPLIT_K programs per tile: each takes whole BLOCK_K steps of K (the last one fewer, or none).
_SPLIT_K = """    k_share = tl.cdiv(tl.cdiv(K, BLOCK_K), SPLIT_K) * BLOCK_K
    k_start = tl.program_id(2) * k_share
    k_end = tl.minimum(K, k_start + k_share)"""
_STORE_OUT = "    offs = (z * M + offs_m[:, None]) * N + offs_n[None, :]\n"
# Partial tiles go to the workspace [SPLIT_K, batch, M, N], in fp32.
_STORE_PART = """    offs = ((tl.program_id(2) * tl.num_programs(1) + z) * M + offs_m[:, None]) * N + offs_n[None, :]
    tl.store(out_ptr + offs, acc, mask=mask)"""
_SPLIT_SUM = _Text('''

@triton.jit
def kw_gemm_split_sum(part_ptr, out_ptr, ${params}total, N, SPLIT_K: tl.constexpr, BLOCK: tl.constexpr):
    # The SPLIT_K partial sums of each output element, added in a fixed order.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    parts = part_ptr + offs
    acc = tl.load(parts, mask=mask, other=0.0)
    for _ in tl.static_range(1, SPLIT_K):
        parts += total
        acc += tl.load(parts, mask=mask, other=0.0)
${store}
''')
_SUM_BLOCK = 1024


def _precisions(analysis: Analysis) -> tuple[str, ...]:
    """What an fp32 task may multiply in: only what its tolerance admits, fastest first."""
    return _FP32_PRECISIONS.get(analysis.precision or "fp32", ("ieee",))


def _dot(operands: str | None, precision: str | None, widen: bool) -> str:
    """The loop's multiply-accumulate: `operands` the 16-bit type the tiles are multiplied in, if any."""
    lines = []
    if precision in ("bf16", "fp16"):  # an fp32 task whose tolerance admits rounding the operands
        lines += [f"a = a.to({operands})", f"b = b.to({operands})"]
    if widen:
        lines += ["if WIDEN:", "    a = a.to(tl.float32)", "    b = b.to(tl.float32)"]
    fp32 = f', input_precision="{precision}"' if precision in ("ieee", "tf32") else ""
    lines.append(f"acc = tl.dot(a, b, acc{fp32})")
    return textwrap.indent("\n".join(lines), " " * 8)


class GemmTemplate:
    name = "triton.gemm"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return isinstance(analysis.pattern, Matmul) and _valid(analysis)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Matmul)
        precisions = _precisions(analysis) if p.dtype == "float32" else ()
        narrow = p.dtype != "float32" or precisions[0] in ("bf16", "fp16")  # 2-byte operands: twice the tile
        bm = _pow2(p.m, 16, 128)
        bn = 256 if narrow and p.m >= 1024 and p.n >= 1024 else _pow2(p.n, 16, 128)
        bk = _pow2(p.k, 16, 64 if narrow else 32)
        space: dict[str, tuple[Any, ...]] = {
            "BLOCK_M": _first(bm, (128, 64, 256, 32, 16)),
            "BLOCK_N": _first(bn, (128, 256, 64, 32, 16)),
            "BLOCK_K": _first(bk, (64, 32, 128, 16) if narrow else (32, 64, 16)),
            "GROUP_M": (8, 1, 4, 16),
            "num_warps": _first(8 if bm * bn >= 128 * 128 else 4, (8, 4, 2)),
            "num_stages": (3, 4, 2),
        }
        # Split K where the output's tiles alone leave SMs idle and each share keeps several K steps.
        tiles = math.ceil(p.m / bm) * math.ceil(p.n / bn) * p.batch
        split = min(16, _SMS // tiles, p.k // (4 * bk)) if tiles < _SMS else 0
        if split >= 2:
            space["SPLIT_K"] = _first(1 << (split.bit_length() - 1), (1, 2, 4, 8, 16))
        if precisions:
            space["precision"] = precisions
        return space

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        kernel, forward, widen = gemm_parts(analysis, params)
        return _candidate(analysis, kernel, forward, _doc(self.name, analysis.pattern, params), widen)


def gemm_parts(analysis: Analysis, params: dict[str, Any]) -> tuple[str, list[str], bool]:
    """triton.gemm's pieces for a Matmul: (the kernels' source, the forward's lines from the operands to
    `kw_out`, whether the module needs WIDEN_BF16). triton.chain renders each of its products with it."""
    p = analysis.pattern
    assert isinstance(p, Matmul)
    t = _Tensors(analysis)
    precision = params.get("precision")
    operands = _DOT_TYPES.get(p.dtype) or _DOT_TYPES.get(precision)
    widen = operands == "tl.bfloat16"
    split = params.get("SPLIT_K", 1)
    constexprs = (", SPLIT_K: tl.constexpr" if split > 1 else "") + (", WIDEN: tl.constexpr" if widen else "")
    kernel = t.helpers + _GEMM.substitute(
        params="" if split > 1 else t.params, constexprs=constexprs, k_range=_SPLIT_K if split > 1 else _WHOLE_K,
        dot=_dot(operands, precision, widen),
        store=_STORE_PART if split > 1 else _STORE_OUT + t.finish("offs_n[None, :]", "mask_n[None, :]"))
    setup, sizes, a = _operands(analysis)
    tiles = f"triton.cdiv(kw_m, {params['BLOCK_M']}) * triton.cdiv(kw_n, {params['BLOCK_N']})"
    constants = _kwargs(params, ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M")) + (
        f", SPLIT_K={split}" if split > 1 else "") + (", WIDEN=WIDEN_BF16" if widen else "")
    launch_options = f"{constants}, {_kwargs(params, ('num_warps', 'num_stages'))})"
    if split > 1:
        kernel += _SPLIT_SUM.substitute(params=t.params, store=t.finish("offs % N", "mask"))
        launch = [f"kw_part = torch.empty(({split}, kw_z * kw_m * kw_n), dtype=torch.float32, device={a}.device)",
                  f"kw_gemm[({tiles}, kw_z, {split})](kw_a, kw_b, kw_part, {sizes}, {launch_options}",
                  (f"kw_gemm_split_sum[(triton.cdiv(kw_part.shape[1], {_SUM_BLOCK}),)](kw_part, kw_out, "
                   f"{t.args}kw_part.shape[1], kw_n, SPLIT_K={split}, BLOCK={_SUM_BLOCK}, num_warps=4)")]
    else:
        launch = [f"kw_gemm[({tiles}, kw_z)](kw_a, kw_b, kw_out, {t.args}{sizes}, {launch_options}"]
    return kernel, setup + t.lines + launch, widen


# -- the thin GEMV ----------------------------------------------------------------------------------

_GEMV = _Text('''
@triton.jit
def kw_gemv(a_ptr, b_ptr, out_ptr, ${params}M, N, K, stride_az, stride_am, stride_ak, stride_bz, stride_bk,
            stride_bn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # Column blocks vary fastest: programs running together read neighbouring slices of b.
    pid = tl.program_id(0)
    z = tl.program_id(1).to(tl.int64)
    blocks_n = tl.cdiv(N, BLOCK_N)
    offs_m = pid // blocks_n * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid % blocks_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_ptrs = a_ptr + z * stride_az + offs_m[:, None].to(tl.int64) * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + z * stride_bz + offs_n[:, None].to(tl.int64) * stride_bn + offs_k[None, :] * stride_bk
    # Products pile up per (row, column, k lane) and are summed over K once, after the loop.
    products = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        mask_k = offs_k < K - k
        a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
        b = tl.load(b_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
        products += a[:, None, :] * b[None, :, :]
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    acc = tl.sum(products, axis=2)
    mask = mask_m[:, None] & mask_n[None, :]
    offs = (z * M + offs_m[:, None]) * N + offs_n[None, :]
${store}
''')
# BLOCK_N x BLOCK_K by BLOCK_M: 8192 products in flight, 64 registers a thread at 4 warps.
_GEMV_TILES = {1: (64, 128), 2: (32, 128), 4: (32, 64), 8: (16, 64), 16: (16, 32)}


class GemvTemplate:
    name = "triton.gemv"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return isinstance(analysis.pattern, Matmul) and analysis.pattern.m <= 16 and _valid(analysis)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Matmul)
        bm = _pow2(p.m, 1, 16)
        bn, bk = _GEMV_TILES[bm]
        return {"BLOCK_M": _first(bm, (1, 2, 4, 8, 16)), "BLOCK_N": _first(bn, (16, 32, 64, 128, 256)),
                "BLOCK_K": _first(bk, (32, 64, 128, 256)), "num_warps": (4, 8, 2), "num_stages": (3, 2, 4, 1)}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Matmul)
        t = _Tensors(analysis)
        kernel = t.helpers + _GEMV.substitute(params=t.params, store=t.finish("offs_n[None, :]", "mask_n[None, :]"))
        setup, sizes, _ = _operands(analysis)
        grid = f"triton.cdiv(kw_m, {params['BLOCK_M']}) * triton.cdiv(kw_n, {params['BLOCK_N']}), kw_z"
        launch = (f"kw_gemv[({grid})](kw_a, kw_b, kw_out, {t.args}{sizes}, "
                  f"{_kwargs(params, ('BLOCK_M', 'BLOCK_N', 'BLOCK_K', 'num_warps', 'num_stages'))})")
        return _candidate(analysis, kernel, [*setup, *t.lines, launch], _doc(self.name, p, params))


# The GEMV first: it only matches thin products, where it is the likelier winner (a first draft is the first match's).
TEMPLATES = [GemvTemplate(), GemmTemplate()]
