"""Nsight Compute profiling: CSV parsing and the ncu command on any machine, a real run on a GPU."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kernelwright.evaluate import profile
from kernelwright.evaluate.profile import KernelProfile, ProfileResult

# Written after ncu 2025.3's `--csv --page raw --print-units base` layout: ncu's own lines
# first, the header, a units row with empty cells for the non-metric columns, one row per
# launch, and every rollup (.avg/.max/.min/.sum) of a requested metric. Trimmed to a few
# of the device attribute columns ncu adds on its own.
_STALL = "smsp__average_warps_issue_stalled_{}_per_issue_active.ratio"
_HEADER = [
    "ID", "Process ID", "Process Name", "Host Name", "Kernel Name", "Context", "Stream",
    "Block Size", "Grid Size", "Device", "CC", "device__attribute_clock_rate",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
    "gpu__time_duration.avg", "gpu__time_duration.sum",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm__warps_active.avg.pct_of_peak_sustained_active",
    _STALL.format("barrier"), _STALL.format("long_scoreboard"), _STALL.format("mio_throttle"),
    _STALL.format("selected"), _STALL.format("short_scoreboard"), _STALL.format("wait"),
]
_UNITS = ["", "", "", "", "", "", "", "", "", "", "", "", "%", "%", "ns", "ns", "%", "%",
          "inst", "inst", "inst", "inst", "inst", "inst"]
_ELEMENTWISE = "void vectorized_elementwise_kernel<4, CUDAFunctorOnSelf_add<float>, std::array<char *, 2>>(int, T2, T3)"
_ROWS = [
    ["0", "510", "python3.12", "127.0.0.1", _ELEMENTWISE, "1", "7", "(128, 1, 1)", "(4096, 1, 1)",
     "0", "9.0", "1,980,000", "48.13", "48.13", "11,456", "11,456", "7.39", "71.00",
     "0", "110.85", "7.15", "1.00", "7.85", "2.22"],
    ["1", "510", "python3.12", "127.0.0.1", "my_matmul", "1", "7", "(256, 1, 1)", "(132, 1, 1)",
     "0", "9.0", "1,980,000", "12.50", "61.20", "1,234,567.5", "1,234,567.5", "88.01", "n/a",
     "12.50", "3.25", "n/a", "1.00", "0.75", "4.50"],
    ["2", "510", "python3.12", "127.0.0.1", _ELEMENTWISE, "1", "7", "(128, 1, 1)", "(4096, 1, 1)",
     "0", "9.0", "1,980,000", "49.87", "49.87", "11,544", "11,544", "7.61", "72.00",
     "0", "115.15", "6.85", "1.00", "8.15", "1.78"],
]


def _quoted(cells: list[str]) -> str:
    return ",".join('"' + cell.replace('"', '""') + '"' for cell in cells)


NCU_CSV = "\n".join([
    "==PROF== Connected to process 510 (/usr/bin/python3.12)",
    "==PROF== Disconnected from process 510",
    _quoted(_HEADER), _quoted(_UNITS), *(_quoted(row) for row in _ROWS),
]) + "\n"


def test_parse_groups_launches_by_kernel_and_reads_numbers():
    kernels = profile.parse_ncu_csv(NCU_CSV)
    assert [k.name for k in kernels] == [_ELEMENTWISE, "my_matmul"]
    add, matmul = kernels
    assert add.duration_ns == pytest.approx(11_500.0)  # the mean of its two launches
    assert add.compute_sol_pct == pytest.approx(7.5)
    assert add.memory_sol_pct == pytest.approx(49.0)
    assert add.dram_throughput_pct == pytest.approx(49.0)
    assert add.achieved_occupancy_pct == pytest.approx(71.5)
    assert add.top_stalls == [("long_scoreboard", pytest.approx(113.0)), ("short_scoreboard", pytest.approx(8.0)),
                              ("mio_throttle", pytest.approx(7.0))]
    assert matmul.duration_ns == pytest.approx(1_234_567.5)
    assert matmul.achieved_occupancy_pct is None  # "n/a"
    # `selected` is issuing, not stalling; zero and n/a reasons are left out.
    assert [name for name, _ in matmul.top_stalls] == ["barrier", "wait", "long_scoreboard"]


def test_parse_scales_durations_to_ns():
    text = NCU_CSV.replace('"ns","ns"', '"usecond","usecond"', 1)
    (add, _) = profile.parse_ncu_csv(text)
    assert add.duration_ns == pytest.approx(11_500_000.0)


def test_parse_ignores_text_that_is_not_the_table():
    assert profile.parse_ncu_csv("") == []
    assert profile.parse_ncu_csv("==PROF== Connected\n==WARNING== No kernels were profiled.\n") == []
    trailing = NCU_CSV + "==PROF== Report: done\n==WARNING== something, with, commas\n"
    assert len(profile.parse_ncu_csv(trailing)) == 2


def test_parse_without_units_row():
    text = "\n".join([_quoted(_HEADER), _quoted(_ROWS[1])])
    (matmul,) = profile.parse_ncu_csv(text)
    assert matmul.duration_ns == pytest.approx(1_234_567.5)


def test_result_to_dict_is_json_ready():
    result = ProfileResult(True, "", [KernelProfile("k", 1.0, 2.0, 3.0, 4.0, 5.0, [("wait", 1.5)])])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["kernels"][0]["top_stalls"] == [["wait", 1.5]]
    assert data["available"] is True


def test_ncu_command(tmp_path):
    script, out = tmp_path / "run.py", tmp_path / "ncu.csv"
    cmd = profile.ncu_command(script, "my_.*kernel", out, launch_count=7, nvtx_range="kw")
    assert Path(cmd[0]).name == "ncu"
    assert cmd[-2:] == [sys.executable, str(script)]
    metrics = cmd[cmd.index("--metrics") + 1].split(",")
    assert set(profile.METRICS.values()) <= set(metrics)
    assert any(m.startswith("regex:") and "stalled" in m for m in metrics)
    for flag, value in [("--page", "raw"), ("--print-units", "base"), ("--target-processes", "all"),
                        ("--launch-count", "7"), ("--log-file", str(out)), ("--kernel-name", "regex:my_.*kernel"),
                        ("--nvtx-include", "kw/")]:
        assert cmd[cmd.index(flag) + 1] == value
    assert "--csv" in cmd and "--nvtx" in cmd


def test_ncu_command_without_filters(tmp_path):
    cmd = profile.ncu_command(tmp_path / "run.py", None, tmp_path / "ncu.csv")
    assert "--kernel-name" not in cmd and "--nvtx" not in cmd
    assert cmd[cmd.index("--launch-count") + 1] == str(profile.LAUNCH_COUNT)


def test_find_ncu_prefers_path(tmp_path, monkeypatch):
    fake = tmp_path / "ncu"
    fake.write_text("#!/bin/sh\necho 'Version 2025.3.1.0 (build 1)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert profile.find_ncu() == str(fake)


@pytest.mark.skipif(torch.cuda.is_available() and profile.find_ncu() is not None, reason="profiling works here")
def test_unavailable_here_says_why(tmp_path):
    ok, why = profile.availability()
    assert not ok and ("ncu" in why or "GPU" in why)
    script = tmp_path / "run.py"
    script.write_text("print('never runs')\n")
    result = profile.profile_script(script, None)
    assert result.available is False and result.kernels == [] and result.reason == why


def test_failure_reason_carries_ncu_errors(tmp_path, monkeypatch):
    # A stand-in ncu that fails the way ncu does without counter permissions.
    fake = tmp_path / "ncu"
    fake.write_text(textwrap.dedent("""\
        #!/bin/sh
        while [ "$1" != "--log-file" ]; do shift; done
        printf '==PROF== Connected to process 1\\n==ERROR== ERR_NVGPUCTRPERM - The user does not have permission\\n' > "$2"
        echo 'Traceback: boom' >&2
        exit 1
        """))
    fake.chmod(0o755)
    monkeypatch.setattr(profile, "find_ncu", lambda: str(fake))
    monkeypatch.setattr(profile, "availability", lambda: (True, "fake ncu"))
    result = profile.profile_script(tmp_path / "run.py", None, timeout=30)
    assert not result.available
    assert "ERR_NVGPUCTRPERM" in result.reason and "boom" in result.reason and "code 1" in result.reason


def test_timeout_is_reported(tmp_path, monkeypatch):
    fake = tmp_path / "ncu"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setattr(profile, "find_ncu", lambda: str(fake))
    monkeypatch.setattr(profile, "availability", lambda: (True, "fake ncu"))
    result = profile.profile_script(tmp_path / "run.py", None, timeout=0.5)
    assert not result.available and "within 0.5 s" in result.reason


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.skipif(profile.find_ncu() is None, reason="needs Nsight Compute")
def test_profile_torch_script_on_gpu(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""\
        import torch
        x = torch.randn(1 << 22, device="cuda")
        torch.cuda.synchronize()
        with torch.cuda.nvtx.range("kw_profile"):
            for _ in range(3):
                y = torch.relu(x * 2 + 1).sum()
        torch.cuda.synchronize()
        """))
    result = profile.profile_script(script, None, nvtx_range="kw_profile")
    assert result.available, result.reason
    assert any(k.duration_ns and k.duration_ns > 0 for k in result.kernels)
    assert not any("distribution" in k.name for k in result.kernels)  # randn ran outside the range
    assert any(k.top_stalls for k in result.kernels)
    for k in result.kernels:
        assert k.compute_sol_pct is not None and k.memory_sol_pct is not None

    reduce_only = profile.profile_script(script, "reduce")
    assert reduce_only.available, reduce_only.reason
    assert all("reduce" in k.name for k in reduce_only.kernels)

    none_match = profile.profile_script(script, "no_such_kernel_xyz")
    assert not none_match.available and "No kernels were profiled" in none_match.reason
