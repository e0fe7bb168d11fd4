"""The Triton template for several matrix products of one input (the Projections pattern): Llama's q, k
and v projections of the same hidden states, each returned split into heads.

triton.projections: one launch computes every product. Its grid is one GEMM's whose column blocks are
the products' side by side (q's, then k's, then v's), taken in triton.gemm's grouped order: the
GROUP_M row blocks of a group take every column block in turn, so programs running together read the
same rows of x from L2 whichever product they compute, and x is read from memory about once for all of
them. Each program computes its BLOCK_M x BLOCK_N tile of one product as triton.gemm does (tl.dot over
BLOCK_K slices, fp32 accumulation, the bias, one store in the output's dtype). The weights are read
where the task holds them, through their strides (nn.Linear's [N, K] as it is): nothing is
concatenated or copied. forward then returns each output through the task's own views (the head split
and transpose), which move no data.

Precision as triton.gemm's: bf16 and fp16 tasks on the tensor cores natively, fp32 tasks in what their
tolerance admits (the `precision` parameter).

Parameters: BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages, precision (fp32 tasks). Shapes
are read from the tensors at run time; the task's shape only chooses the defaults.
"""

from __future__ import annotations

from string import Template as _Text
from typing import Any

from kernelwright.generate.expert.patterns import Analysis, Dim, Input, Projections, View
from kernelwright.generate.expert.templates.triton_gemm import (
    _DOT_TYPES, _candidate, _dot, _first, _kwargs, _pow2, _precisions,
)

_KERNEL = _Text('''
@triton.jit
def kw_projections(a_ptr, M, K, stride_am, stride_ak,
                   ${params}BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                   GROUP_M: tl.constexpr${constexprs}):
    # The products' column blocks side by side, in triton.gemm's grouped order over them all.
    pid = tl.program_id(0)
${blocks}
    group = GROUP_M * columns
    first_m = pid // group * GROUP_M
    group_m = tl.minimum(tl.cdiv(M, BLOCK_M) - first_m, GROUP_M)
    pid_m = first_m + pid % group % group_m
    pid_n = pid % group // group_m
    # The product this column block is in: its weight, output and width; one tile loop for all (a loop per
    # product would hold a pipeline's shared memory each).
${select}
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_ptrs = a_ptr + offs_m[:, None].to(tl.int64) * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + ${b_offs}
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        mask_k = offs_k < K - k
        a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
${dot}
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += ${b_step}
${bias}    offs = offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])
''')
_BIAS = "    acc += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]\n"


def _valid(analysis: Analysis) -> bool:
    """Whether the kernel writes these products: of one input, by 2-D operands that exist, all laid out alike
    (the kernel's one loop reads every weight through the same strides) and all with a row bias or none."""
    p = analysis.pattern
    first = p.products[0] if p.products else None
    return (first is not None and p.dtype in ("float32", "bfloat16", "float16") and len(p.products) == len(p.views)
            and all(not m.batched and m.a == first.a and m.epilogue is None and m.b_transposed == first.b_transposed
                    and (m.bias is None) == (first.bias is None) and (m.bias is None or m.bias.layout == "row")
                    for m in p.products)
            and all(t.index < len(analysis.forward_args) for m in p.products for t in (m.a, m.b)
                    if isinstance(t, Input)))


def _view(view: View, args: tuple[str, ...]) -> str:
    """One of forward's views as code, sizes read from the forward's arguments where the task reads them."""
    sizes = ", ".join(f"{args[a.index]}.shape[{a.dim}]" if isinstance(a, Dim) else str(a) for a in view.args)
    return f".{view.op}({sizes})"


class ProjectionsTemplate:
    name = "triton.projections"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return isinstance(analysis.pattern, Projections) and _valid(analysis)

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        p = analysis.pattern
        assert isinstance(p, Projections)
        precisions = _precisions(analysis) if p.dtype == "float32" else ()
        narrow = p.dtype != "float32" or precisions[0] in ("bf16", "fp16")  # 2-byte operands: twice the tile
        m, k, ns = p.products[0].m, p.products[0].k, [product.n for product in p.products]
        bm = _pow2(m, 16, 128)
        bn = 256 if narrow and m >= 1024 and min(ns) >= 1024 else _pow2(max(ns), 16, 128)
        bk = _pow2(k, 16, 64 if narrow else 32)
        space: dict[str, tuple[Any, ...]] = {
            "BLOCK_M": _first(bm, (128, 64, 256, 32, 16)),
            "BLOCK_N": _first(bn, (128, 256, 64, 32, 16)),
            "BLOCK_K": _first(bk, (64, 32, 128, 16) if narrow else (32, 64, 16)),
            "GROUP_M": (8, 1, 4, 16),
            "num_warps": _first(8 if bm * bn >= 128 * 128 else 4, (8, 4, 2)),
            "num_stages": (3, 4, 2),
        }
        if precisions:
            space["precision"] = precisions
        return space

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        p = analysis.pattern
        assert isinstance(p, Projections)
        precision = params.get("precision")
        operands = _DOT_TYPES.get(p.dtype) or _DOT_TYPES.get(precision)
        widen = operands == "tl.bfloat16"
        biased = p.products[0].bias is not None
        args = analysis.forward_args
        a = args[p.products[0].a.index]
        forward = [f"kw_a = {a}.reshape(-1, {a}.shape[-1])", "kw_m, kw_k = kw_a.shape"]
        kernel_params, launch, select = [], [], []
        count = len(p.products)
        for i, product in enumerate(p.products):
            # Contiguous (parameters already are): the kernel knows where K and N run, so its loads vectorize.
            b = args[product.b.index] if isinstance(product.b, Input) else f"self.{product.b.name}"
            forward += [f"kw_b{i} = {b}.contiguous()",
                        f"kw_n{i} = kw_b{i}.shape[{0 if product.b_transposed else 1}]",
                        f"kw_out{i} = torch.empty({a}.shape[:-1] + (kw_n{i},), dtype={a}.dtype, device={a}.device)"]
            forward += [f"kw_bias{i} = self.{product.bias.name}.contiguous()"] if biased else []
            kernel_params.append(f"b{i}_ptr, out{i}_ptr, " + f"bias{i}_ptr, " * biased + f"N{i},")
            launch.append(f"kw_b{i}, kw_out{i}, " + f"kw_bias{i}, " * biased + f"kw_n{i}, ")
            take = [f"b_ptr = b{i}_ptr", f"out_ptr = out{i}_ptr", f"N = N{i}"] + [f"bias_ptr = bias{i}_ptr"] * biased
            take += [f"pid_n -= {' + '.join(f'blocks{j}' for j in range(i))}"] if i else []
            if count == 1:
                select += [f"    {line}" for line in take]
                continue
            ends = " + ".join(f"blocks{j}" for j in range(i + 1))
            test = "else:" if i == count - 1 else f"{'elif' if i else 'if'} pid_n < {ends}:"
            select += [f"    {test}", *(f"        {line}" for line in take)]
        blocks = [f"    blocks{i} = tl.cdiv(N{i}, BLOCK_N)" for i in range(count)]
        blocks.append("    columns = " + " + ".join(f"blocks{i}" for i in range(count)))
        # Where K and N run in the contiguous weights: [N, K] (nn.Linear's, read transposed) or [K, N].
        b_offs, b_step = (("offs_k[:, None] + offs_n[None, :].to(tl.int64) * K", "BLOCK_K")
                          if p.products[0].b_transposed else ("offs_k[:, None] * N + offs_n[None, :]", "BLOCK_K * N"))
        kernel = _KERNEL.substitute(
            params="".join(f"{line}\n                   " for line in kernel_params), blocks="\n".join(blocks),
            select="\n".join(select), b_offs=b_offs, b_step=b_step, dot=_dot(operands, precision, widen),
            bias=_BIAS if biased else "", constexprs=", WIDEN: tl.constexpr" if widen else "")
        columns = " + ".join(f"triton.cdiv(kw_n{i}, {params['BLOCK_N']})" for i in range(count))
        constants = _kwargs(params, ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M")) + (
            ", WIDEN=WIDEN_BF16" if widen else "")
        forward.append(f"kw_projections[(triton.cdiv(kw_m, {params['BLOCK_M']}) * ({columns}),)](kw_a, kw_m, kw_k, "
                       f"kw_a.stride(0), kw_a.stride(1), {''.join(launch)}{constants}, "
                       f"{_kwargs(params, ('num_warps', 'num_stages'))})")
        outputs = ", ".join(f"kw_out{i}" + "".join(_view(v, args) for v in views) for i, views in enumerate(p.views))
        what = f"{count} {p.dtype} matrix products of one input" + (" + bias" if biased else "")
        doc = f"{self.name}: {what}; " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."
        return _candidate(analysis, kernel, forward, doc, widen, returns=outputs)


TEMPLATES = [ProjectionsTemplate()]
