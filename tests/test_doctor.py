"""`kernelwright doctor`: every row present, nothing raises, the table renders."""

from __future__ import annotations

import pytest
import torch
from rich.console import Console

from kernelwright import doctor

NAMES = [
    "CUDA GPU", "Triton (GPU)", "Triton (interpreter)", "CUDA via NVRTC", "CUDA via load_inline",
    "CPU C++", "nvcc", "g++ with OpenMP", "ninja", "Nsight Compute",
]


def test_diagnose_reports_every_row():
    checks = doctor.diagnose()
    assert [c.name for c in checks] == NAMES
    assert {c.area for c in checks} == {"device", "backend", "compiler", "profiler"}
    for check in checks:
        assert check.detail and "\n" not in check.detail


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU wording")
def test_without_a_gpu_the_gpu_rows_say_why():
    checks = {c.name: c for c in doctor.diagnose()}
    gpu = checks["CUDA GPU"]
    assert not gpu.usable and ("without CUDA" in gpu.detail or "no CUDA device" in gpu.detail)
    assert not checks["Triton (GPU)"].usable
    assert not checks["CUDA via load_inline"].usable
    assert not checks["Nsight Compute"].usable


def test_a_broken_check_becomes_an_unusable_row(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded\nsecond line")

    monkeypatch.setattr(doctor, "_ninja", broken)
    ninja = next(c for c in doctor.diagnose() if c.name == "ninja")
    assert not ninja.usable and ninja.detail == "RuntimeError: driver exploded second line"


def test_missing_backend_module_is_reported_not_raised():
    usable, detail = doctor._backend_available("kernelwright.backends.no_such_backend")
    assert not usable and "not installed" in detail


def test_render_prints_table_and_summary():
    console = Console(record=True, width=200)
    checks = [
        doctor.Check("device", "CUDA GPU", False, "no CUDA device visible"),
        doctor.Check("backend", "Triton (interpreter)", True, "triton 3.9.0"),
        doctor.Check("backend", "CPU C++", True, "g++ 12"),
        doctor.Check("profiler", "Nsight Compute", False, "ncu not found"),
    ]
    doctor.render(checks, console)
    text = console.export_text()
    for check in checks:
        assert check.name in text and check.detail in text
    assert "✓" in text and "✗" in text
    assert "Candidates can run here with: Triton (interpreter), CPU C++." in text


def test_render_real_checks_names_all_rows():
    console = Console(record=True, width=200)
    doctor.render(doctor.diagnose(), console)
    text = console.export_text()
    assert all(name in text for name in NAMES)


def test_render_says_when_nothing_can_run():
    console = Console(record=True, width=120)
    doctor.render([doctor.Check("backend", "CPU C++", False, "g++ not found")], console)
    assert "No backend can run candidates here" in console.export_text()
