"""Templates: parametric kernel writers, one family per module and backend.

A template matches an Analysis (by its pattern), offers a parameter space (each
parameter's allowed values, the first one the default), and renders a whole
candidate file: the task's imports, the kernel(s), and `class ModelNew` whose
`__init__` is the task's own (so the weights and their names are the
reference's) and whose `forward` launches the kernel(s).

Rules every rendered candidate keeps (the evaluator rejects otherwise): no
PyTorch compute in forward beyond allocation (torch.empty*), views, shapes and
.contiguous(); no try/except; no reference `Model`; at least one custom kernel
launched. Reductions accumulate in fp32 whatever the input dtype, and outputs
are written in the input dtype.
"""

from __future__ import annotations

from typing import Any, Protocol

from kernelwright.generate.expert.patterns import Analysis, Expr, Input, Weight, leaves


class Template(Protocol):
    name: str  # "<backend>.<family>", e.g. "triton.pointwise"
    backend: str  # "triton" or "cpu"

    def matches(self, analysis: Analysis) -> bool: ...

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        """Parameter -> allowed values; the first value of each is the default."""
        ...

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        """The candidate source for these parameters (every parameter present and allowed)."""
        ...


def all_templates() -> list[Template]:
    from kernelwright.generate.expert.templates import cpu, cpu_scan, triton, triton_attention, triton_gemm, triton_scan
    from kernelwright.generate.expert.templates import triton_conv
    from kernelwright.generate.expert.templates import cpu_kl, triton_kl
    from kernelwright.generate.expert.templates import cpu_column_reduce, cpu_group_norm, triton_column_reduce
    from kernelwright.generate.expert.templates import triton_cooperative, triton_group_norm
    from kernelwright.generate.expert.templates import triton_projections, triton_rotary
    from kernelwright.generate.expert.templates import triton_patch_embed
    from kernelwright.generate.expert.templates import triton_chain

    # The cooperative templates before triton.norm, triton.row_reduce and triton.group_norm: where they match
    # (rows of 16384 or more) they read x once where those read it twice, and a run's first draft is the first
    # template's.
    return [*triton_cooperative.TEMPLATES, *triton.TEMPLATES, *triton_gemm.TEMPLATES, *triton_scan.TEMPLATES,
            *triton_attention.TEMPLATES, *triton_conv.TEMPLATES, *cpu.TEMPLATES, *cpu_scan.TEMPLATES,
            *triton_kl.TEMPLATES, *cpu_kl.TEMPLATES,
            *triton_column_reduce.TEMPLATES, *triton_group_norm.TEMPLATES, *cpu_column_reduce.TEMPLATES,
            *cpu_group_norm.TEMPLATES, *triton_projections.TEMPLATES, *triton_rotary.TEMPLATES,
            *triton_patch_embed.TEMPLATES, *triton_chain.TEMPLATES]


def defaults(template: Template, analysis: Analysis) -> dict[str, Any]:
    return {name: values[0] for name, values in template.space(analysis).items()}


def named_leaves(exprs: list[Expr | None]) -> dict[Input | Weight, str]:
    """The tensor leaves of the expressions, in first-seen order, with kernel parameter names: `in0` for
    forward argument 0, `w0` for the first weight; the same tensor under a second layout (rare) gets the
    layout appended, a second parameter over one tensor."""
    names: dict[Input | Weight, str] = {}
    for expr in exprs:
        for leaf in leaves(expr) if expr is not None else []:
            if leaf in names:
                continue
            name = f"in{leaf.index}" if isinstance(leaf, Input) else f"w{sum(isinstance(k, Weight) for k in names)}"
            names[leaf] = f"{name}_{leaf.layout}" if name in names.values() else name
    return names
