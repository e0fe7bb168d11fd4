"""Does a candidate's output match the reference's? The tolerance policy and the comparison.

Tolerance policy (docs/correctness.md says the same):
- The task's *precision* is the lowest arithmetic it admits: its `precision`
  metadata, else its dtype (fp32 tasks admit fp32 only). When the reference
  itself computes in a lower precision on this device (PyTorch runs float32
  convolutions on TF32 tensor cores by default), the candidate may too: the
  admitted precision is the lower of the two.
- Each precision has an (rtol, atol) pair, chosen so that an honest kernel
  with another summation order passes and one that computes in the next lower
  precision fails: fp32 (1e-4, 1e-4), tf32 (5e-3, 5e-3), fp16 (1e-2, 1e-2),
  bf16 (2e-2, 2e-2). Explicit `atol`/`rtol` in the task override them.
- An element passes when |got - expected| <= atol * rms(expected) + rtol * |expected|.
  atol is scaled by the output's root-mean-square, so a tolerance means the
  same for outputs of size 1e-3 and 1e3 and elements that cancel to near zero
  are judged against the size of their terms, not against zero.
- NaN and Inf never pass unless the reference has the same value in the same
  place. Integer and boolean outputs must match exactly. Shapes and dtypes
  must match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

TOLERANCES = {"fp32": (1e-4, 1e-4), "tf32": (5e-3, 5e-3), "fp16": (1e-2, 1e-2), "bf16": (2e-2, 2e-2)}
_PRECISION_ORDER = ("fp32", "tf32", "fp16", "bf16")  # most to least precise
_DTYPE_PRECISION = {"float64": "fp32", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class Tolerance:
    precision: str
    rtol: float
    atol: float

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "rtol": self.rtol, "atol": self.atol}


def tolerance_for(dtype: str, precision: str | None, reference_units: set[str] | frozenset[str],
                  atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """The tolerance for a task: see the module docstring for the policy."""
    admitted = precision or _DTYPE_PRECISION.get(dtype, "fp32")
    for unit in reference_units:  # the reference's own arithmetic is admitted too
        if unit in _PRECISION_ORDER and _PRECISION_ORDER.index(unit) > _PRECISION_ORDER.index(admitted):
            admitted = unit
    default_rtol, default_atol = TOLERANCES[admitted]
    return Tolerance(admitted, default_rtol if rtol is None else rtol, default_atol if atol is None else atol)


@dataclass(frozen=True)
class Comparison:
    ok: bool
    message: str  # "" when ok
    max_abs_error: float
    max_rel_error: float  # relative to rms(expected)
    mismatch: dict[str, Any] | None = None  # output, index, expected, got, error, allowed

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "mismatch": self.mismatch}


def compare(got: list[torch.Tensor], expected: list[torch.Tensor], tol: Tolerance) -> Comparison:
    """Compare output lists; the first failing output is described by its worst element."""
    if len(got) != len(expected):
        return _fail(f"returned {len(got)} output(s), the reference returns {len(expected)}")
    worst_abs = worst_rel = 0.0
    for i, (g, e) in enumerate(zip(got, expected)):
        if g.shape != e.shape:
            return _fail(f"output {i} has shape {list(g.shape)}, expected {list(e.shape)}")
        if g.dtype != e.dtype:
            return _fail(f"output {i} has dtype {g.dtype}, expected {e.dtype}")
        if g.device != e.device:
            g = g.to(e.device)
        result = _compare_one(i, g, e, tol)
        if not result.ok:
            return result
        worst_abs, worst_rel = max(worst_abs, result.max_abs_error), max(worst_rel, result.max_rel_error)
    return Comparison(True, "", worst_abs, worst_rel)


def _compare_one(index: int, got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> Comparison:
    if got.numel() == 0:
        return Comparison(True, "", 0.0, 0.0)
    if not (expected.is_floating_point() or expected.is_complex()):
        bad = got != expected
        if bad.any():
            flat = int(bad.reshape(-1).nonzero()[0])
            return _mismatch(index, got, expected, flat, "differs (exact match required)", 0.0,
                             count=int(bad.sum()))
        return Comparison(True, "", 0.0, 0.0)

    # float32 arithmetic is exact enough for these tolerances and halves the
    # memory of float64 (outputs of several GB exist in KernelBench).
    work = torch.float64 if expected.dtype == torch.float64 else torch.float32
    g, e = got.to(work), expected.to(work)
    finite = torch.isfinite(e)
    # Non-finite reference values must be reproduced exactly, in the same places.
    nonfinite_bad = ~finite & ~((g == e) | (g.isnan() & e.isnan()))
    if nonfinite_bad.any():
        flat = int(nonfinite_bad.reshape(-1).nonzero()[0])
        return _mismatch(index, got, expected, flat, "non-finite value differs from the reference's", 0.0,
                         count=int(nonfinite_bad.sum()))

    e_finite = torch.where(finite, e, torch.zeros_like(e))
    scale = float(e_finite.square().mean().sqrt()) or 1.0
    error = (g - e_finite).abs()
    error = torch.where(finite, error, torch.zeros_like(error))
    error = torch.where(torch.isnan(error), torch.full_like(error, float("inf")), error)  # NaN where finite expected
    allowed = tol.atol * scale + tol.rtol * e_finite.abs()
    excess = error - allowed
    flat = int(excess.reshape(-1).argmax())
    max_abs = float(error.max())
    if float(excess.reshape(-1)[flat]) > 0:
        return _mismatch(index, got, expected, flat, "outside tolerance", float(allowed.reshape(-1)[flat]),
                         count=int((excess > 0).sum()), max_abs=max_abs, max_rel=max_abs / scale)
    return Comparison(True, "", max_abs, max_abs / scale)


def _mismatch(output: int, got: torch.Tensor, expected: torch.Tensor, flat: int, what: str, allowed: float,
              count: int, max_abs: float = float("inf"), max_rel: float = float("inf")) -> Comparison:
    index = [int(i) for i in torch.unravel_index(torch.tensor(flat), got.shape)]
    g, e = got.reshape(-1)[flat].item(), expected.reshape(-1)[flat].item()
    detail = {"output": output, "index": index, "expected": e, "got": g,
              "error": abs(g - e) if isinstance(g, (int, float)) else None, "allowed": allowed,
              "mismatched_elements": count, "elements": got.numel()}
    message = f"output {output} at index {index}: got {g!r}, expected {e!r} ({what}"
    message += f"; allowed error {allowed:.3g}" if allowed else ""
    message += f"; {count} of {got.numel()} elements wrong)"
    return Comparison(False, message, max_abs, max_rel, detail)


def _fail(message: str) -> Comparison:
    return Comparison(False, message, float("inf"), float("inf"))
