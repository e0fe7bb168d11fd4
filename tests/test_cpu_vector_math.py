"""The C++ templates' vector math (math="vector": kw_exp, kw_log, kw_log1p, kw_erf, kw_tanh) against float64
references, over dense grids and special values: each within the error its comment in
kernelwright/generate/expert/templates/cpu.py states. Built with the templates' own prelude and flags."""

from __future__ import annotations

import pytest
import torch

from kernelwright.backends import cpu as backend_cpu
from kernelwright.generate.expert.templates import cpu

_PROBE = r"""
extern "C" void kw_math(const float* __restrict x, float* __restrict out, long n, long which) {
    for (long i = 0; i < n; ++i) {
        const float v = x[i];
        out[i] = which == 0 ? kw_exp(v) : which == 1 ? kw_log(v) : which == 2 ? kw_log1p(v)
                 : which == 3 ? kw_erf(v) : kw_tanh(v);
    }
}
"""
FUNCTIONS = ("exp", "log", "log1p", "erf", "tanh")
SPECIALS = [0.0, -0.0, 1e-45, -1e-45, 1e-38, float("inf"), float("-inf"), float("nan")]


@pytest.fixture(scope="module")
def kw_math():
    ok, why = backend_cpu.available()
    if not ok:
        pytest.skip(why)
    library = backend_cpu.compile(cpu._PRELUDE + cpu._VECTOR + _PROBE)

    def run(name: str, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        library["kw_math"](x, out, x.numel(), FUNCTIONS.index(name))
        return out
    return run


def grid(lo: float, hi: float, n: int = 200_001) -> torch.Tensor:
    return torch.linspace(lo, hi, n, dtype=torch.float64).float()


def ulps(got: torch.Tensor, x: torch.Tensor, reference) -> torch.Tensor:
    """|got - f(x)| in units of the float spacing at f(x), f taken in float64."""
    exact = reference(x.double())
    spacing = torch.nextafter(exact.float().abs(), torch.tensor(float("inf"))).double() - exact.float().abs().double()
    return (got.double() - exact).abs() / spacing


def test_exp_and_log_are_within_2_ulp_and_tanh_within_3(kw_math) -> None:
    for name, x, bound in (("exp", grid(-87.0, 88.0), 2), ("exp", grid(-1.0, 1.0), 2),
                           ("log", torch.cat([grid(1e-30, 1e-3), grid(1e-3, 10.0), grid(10.0, 3e38)]), 2),
                           ("tanh", grid(-12.0, 12.0), 3), ("tanh", grid(-0.7, 0.7), 3)):
        error = ulps(kw_math(name, x), x, getattr(torch, name))
        assert error.max() <= bound, (name, x[error.argmax()].item(), error.max().item())


def test_log1p_keeps_the_digits_of_small_arguments(kw_math) -> None:
    x = torch.cat([grid(-0.9, 10.0), grid(-1e-6, 1e-6)])
    error = ulps(kw_math("log1p", x), x, torch.log1p)
    assert error.max() <= 3, (x[error.argmax()].item(), error.max().item())


def test_erf_is_within_2_5e_7_relative_below_1_and_1_2e_7_absolute_above(kw_math) -> None:
    small, large = grid(-1.0, 1.0), torch.cat([grid(-30.0, -1.0), grid(1.0, 30.0)])
    small = small[small.abs() < 1.0]
    exact = torch.erf(small.double())
    relative = ((kw_math("erf", small).double() - exact).abs() / exact.abs().clamp_min(1e-300))[small != 0]
    assert relative.max() <= 2.5e-7, (small[small != 0][relative.argmax()].item(), relative.max().item())
    absolute = (kw_math("erf", large).double() - torch.erf(large.double())).abs()
    assert absolute.max() <= 1.2e-7, (large[absolute.argmax()].item(), absolute.max().item())
    assert kw_math("erf", large).abs().max() <= 1.0


def test_special_values_are_the_float64_results_rounded(kw_math) -> None:
    x = torch.tensor(SPECIALS)
    for name in FUNCTIONS:
        got, want = kw_math(name, x), getattr(torch, name)(x.double()).float()
        close = torch.isclose(got, want, rtol=3e-7, atol=0.0, equal_nan=True)
        assert close.all(), (name, x[~close].tolist(), got[~close].tolist(), want[~close].tolist())
        assert (torch.signbit(got) == torch.signbit(want))[~want.isnan()].all(), name
