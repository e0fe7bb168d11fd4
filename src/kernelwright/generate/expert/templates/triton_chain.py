"""Triton template for several kernels in sequence (the Chain pattern): MLP blocks, a product then a norm.

triton.chain: one candidate file holding each stage's kernels, written by the stage's own template (a
matrix product by triton.gemm's `gemm_parts`, with its bias and epilogue fused; a norm by triton.norm's
`norm_parts`, its prologue and affine step and epilogue fused), and a forward that
allocates each intermediate (torch.empty, in the task's dtype, as the reference stores it) and launches
the stages in order, each reading the forward's inputs and the earlier stages' outputs. Stage i's
kernels and forward names carry the prefix `kw{i}_` (kw0_gemm, kw0_out, ...).

Parameters: each stage's triton.gemm (or triton.norm) parameters, prefixed by the stage (s1_BLOCK_M,
s2_num_warps, ...), defaults from that template's for the stage's shape. Accumulation is fp32; a bf16 task's products and
their epilogues' ops are rounded to bf16 where the reference stores each one.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kernelwright import pysource
from kernelwright.generate.expert.patterns import Analysis, Chain, Matmul, Norm
from kernelwright.generate.expert.templates.triton import NormTemplate, norm_parts
from kernelwright.generate.expert.templates.triton_gemm import (
    GemmTemplate,
    _candidate,
    gemm_parts,
)

_GEMM, _NORM = GemmTemplate(), NormTemplate()


def _stage_analyses(analysis: Analysis) -> list[Analysis]:
    """Each stage as an Analysis of its own: the forward's arguments followed by the earlier stages' outputs."""
    chain = analysis.pattern
    assert isinstance(chain, Chain)
    return [replace(analysis, pattern=stage,
                    forward_args=analysis.forward_args + tuple(f"kw{j}_out" for j in range(i)))
            for i, stage in enumerate(chain.stages)]


def _template(stage: Analysis) -> GemmTemplate | NormTemplate:
    return _GEMM if isinstance(stage.pattern, Matmul) else _NORM


def _defined(kernel: str, lines: list[str]) -> set[str]:
    """The `kw_` names a stage's pieces define: its kernels and helpers, and what its forward lines assign
    (the caller leaves out the stage's inputs, which a norm's lines rebind: `x = x.contiguous()`). Only these
    are renamed; the task's own names (an argument or attribute that happens to start with `kw_`) are not."""
    module = pysource.parse(kernel + "\n" + "\n".join(lines))
    names = {n.name for n in module.body if isinstance(n, ast.FunctionDef)}
    names |= {t.id for n in ast.walk(module) if isinstance(n, (ast.Assign, ast.AnnAssign))
              for t in ast.walk(n) if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)}
    return {name for name in names if name.startswith("kw_")}


def _renamer(names: set[str], prefix: str) -> Callable[[str], str]:
    """Text -> the same text with each whole-word `kw_NAME` of `names` (not an attribute) as `prefixNAME`."""
    if not names:
        return lambda text: text
    word = re.compile(r"(?<![\w.])(" + "|".join(sorted(names)) + r")\b")
    return lambda text: word.sub(lambda m: prefix + m[1].removeprefix("kw_"), text)


def _prefix(i: int) -> str:
    return f"s{i + 1}_"


class ChainTemplate:
    name = "triton.chain"
    backend = "triton"

    def matches(self, analysis: Analysis) -> bool:
        return isinstance(analysis.pattern, Chain) and all(
            _GEMM.matches(s) if isinstance(s.pattern, Matmul)
            else isinstance(s.pattern, Norm) and s.pattern.outputs == ("value",) and _NORM.matches(s)
            for s in _stage_analyses(analysis))

    def space(self, analysis: Analysis) -> dict[str, tuple[Any, ...]]:
        return {_prefix(i) + name: values for i, stage in enumerate(_stage_analyses(analysis))
                for name, values in _template(stage).space(stage).items()}

    def render(self, analysis: Analysis, params: dict[str, Any]) -> str:
        kernels, forward, widen_any, norms = [], [], False, False
        for i, stage in enumerate(_stage_analyses(analysis)):
            own = {name.removeprefix(_prefix(i)): value for name, value in params.items()
                   if name.startswith(_prefix(i))}
            if isinstance(stage.pattern, Matmul):
                kernel, lines, widen = gemm_parts(stage, own)
            else:
                (kernel, lines), widen = norm_parts(stage, own), False
                norms = True
            # Each stage's kernels and forward names its own: kw_gemm -> kw0_gemm, kw_out -> kw0_out.
            rename = _renamer(_defined(kernel, lines) - set(stage.forward_args), f"kw{i}_")
            kernels.append(rename(kernel))
            forward += [rename(line) for line in lines]
            widen_any |= widen
        last = len(analysis.pattern.stages) - 1
        what = " then ".join("matrix product" if isinstance(s, Matmul) else f"{s.kind} norm"
                             for s in analysis.pattern.stages)
        doc = f"{self.name}: {analysis.pattern.dtype} {what}; " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."
        if norms and "import math" not in analysis.imports.splitlines():  # the norms' launches use math.prod
            analysis = replace(analysis, imports=analysis.imports + "\nimport math")
        return _candidate(analysis, "\n".join(kernels), forward, doc, widen_any, returns=f"kw{last}_out")


TEMPLATES = [ChainTemplate()]
