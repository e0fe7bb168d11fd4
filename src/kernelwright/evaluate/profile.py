"""Nsight Compute metrics for the kernels a candidate launches (`--profile`).

The evaluator writes a small script that loads one saved input set and calls the
candidate a few times; `profile_script` runs it under `ncu` and returns a fixed set
of metrics per kernel. Profiling is best-effort: without ncu, without a GPU, or when
ncu fails, the result says so in `reason` instead of raising.
"""

from __future__ import annotations

import csv
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

# KernelProfile field -> the ncu metric it reads; `--page raw` prints one column per metric.
METRICS = {
    "duration_ns": "gpu__time_duration.sum",
    "compute_sol_pct": "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "memory_sol_pct": "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
    "dram_throughput_pct": "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "achieved_occupancy_pct": "sm__warps_active.avg.pct_of_peak_sustained_active",
}
# Warp stall reasons as Nsight Compute's Warp State section shows them: cycles per issued
# instruction that an average warp spent stalled for each reason. A regex rather than a
# list, because the reasons differ between architectures (Hopper adds `gmma`) and ncu
# rejects a metric the GPU lacks. `selected` is the issuing itself, not a stall.
_STALL = re.compile(r"^smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio$")
_STALL_METRICS = r"regex:^smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio$"
_NOT_A_STALL = {"selected"}
TOP_STALLS = 3

LAUNCH_COUNT = 20  # launches profiled per run; each replays its kernel several times
_NS_PER_UNIT = {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "s": 1e9, "second": 1e9}
_NCU_GLOBS = ("/opt/nvidia/nsight-compute/*/ncu", "/usr/local/cuda/bin/ncu")


@dataclass(frozen=True)
class KernelProfile:
    name: str
    duration_ns: float | None
    compute_sol_pct: float | None
    memory_sol_pct: float | None
    dram_throughput_pct: float | None
    achieved_occupancy_pct: float | None
    top_stalls: list[tuple[str, float]]  # (reason, cycles per issued instruction), largest first


@dataclass(frozen=True)
class ProfileResult:
    available: bool
    reason: str  # why no profile came back, or ""
    kernels: list[KernelProfile]

    def to_dict(self) -> dict:
        return asdict(self)


def find_ncu() -> str | None:
    """The ncu executable: PATH first, then the newest standalone install, then the CUDA toolkit's."""
    on_path = shutil.which("ncu")
    if on_path:
        return on_path
    for pattern in _NCU_GLOBS:
        found = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        for path in found:
            if os.access(path, os.X_OK):
                return path
    return None


def availability() -> tuple[bool, str]:
    """Whether profiling can run here; the detail is ncu's path and version, or what is missing."""
    ncu = find_ncu()
    problems = []
    if ncu is None:
        problems.append(
            "Nsight Compute (ncu) not found on PATH, under /opt/nvidia/nsight-compute/*/ "
            "or in /usr/local/cuda/bin; install Nsight Compute or put ncu on PATH"
        )
    if not torch.cuda.is_available():
        built = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
        problems.append(f"no CUDA GPU visible to torch {torch.__version__} (built {built}); ncu profiles GPU kernels only")
    if problems:
        return False, "; ".join(problems)
    return True, f"{_ncu_version(ncu)} at {ncu}"


def ncu_command(
    script: Path,
    kernel_regex: str | None,
    out_csv: Path,
    *,
    launch_count: int = LAUNCH_COUNT,
    nvtx_range: str | None = None,
) -> list[str]:
    """The ncu command line profiling `python script` into `out_csv`.

    `--page raw --csv` gives one row per launch and one column per metric, after a units
    row; `--log-file` keeps that apart from the script's own output. `nvtx_range` limits
    profiling to launches inside a `torch.cuda.nvtx.range(nvtx_range)` in the script, so
    loading inputs does not use up the launch count.
    """
    metrics = ",".join([*METRICS.values(), _STALL_METRICS])
    cmd = [
        find_ncu() or "ncu",
        "--metrics", metrics,
        "--csv", "--page", "raw",
        "--print-units", "base",  # durations in ns whatever their size
        # Full demangled names: torch's many `vectorized_elementwise_kernel<...>` stay apart.
        "--print-kernel-base", "demangled",
        "--target-processes", "all",
        "--launch-count", str(launch_count),
        "--log-file", str(out_csv),
    ]
    if nvtx_range:
        cmd += ["--nvtx", "--nvtx-include", f"{nvtx_range}/"]
    if kernel_regex:
        cmd += ["--kernel-name", f"regex:{kernel_regex}"]
    return [*cmd, sys.executable, str(script)]


def parse_ncu_csv(text: str) -> list[KernelProfile]:
    """Kernels from ncu's `--csv --page raw` output, one per kernel name, averaged over its launches.

    Tolerates ncu's `==PROF==` lines around the table, the units row under the header,
    thousands separators ("1,234.5") and "n/a".
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID",')), None)
    if start is None:
        return []
    header, *rows = csv.reader(lines[start:])
    units: dict[str, str] = {}
    launches: dict[str, list[dict[str, float | None]]] = defaultdict(list)
    for row in rows:
        if len(row) != len(header):
            continue  # an ncu message line after the table
        cells = dict(zip(header, row))
        if not cells["ID"].strip():
            units = cells  # the units row: no launch ID
            continue
        if not cells["ID"].strip().isdigit():
            continue
        launches[cells["Kernel Name"]].append({col: _number(value) for col, value in cells.items()})
    scale = _NS_PER_UNIT.get(units.get(METRICS["duration_ns"], "ns").strip(), 1.0)
    return [_kernel_profile(name, runs, scale) for name, runs in launches.items()]


def profile_script(
    script: Path, kernel_regex: str | None, timeout: float = 300, *, nvtx_range: str | None = None,
    env: dict[str, str] | None = None,
) -> ProfileResult:
    """Run `script` under ncu (with `env` added to this process's environment); `available=False`
    with the reason when that cannot be done."""
    ok, why = availability()
    if not ok:
        return ProfileResult(False, why, [])
    with tempfile.TemporaryDirectory(prefix="kernelwright-ncu-") as tmp:
        out_csv = Path(tmp) / "ncu.csv"
        cmd = ncu_command(Path(script), kernel_regex, out_csv, nvtx_range=nvtx_range)
        try:
            returncode, stdout, stderr = _run(cmd, timeout, env)
        except subprocess.TimeoutExpired:
            why = f"ncu did not finish within {timeout:g} s; profile fewer launches or a smaller input"
            return ProfileResult(False, why, [])
        except OSError as exc:
            return ProfileResult(False, f"could not start ncu: {exc}", [])
        log = out_csv.read_text(errors="replace") if out_csv.exists() else ""
    kernels = parse_ncu_csv(log)
    if kernels:
        return ProfileResult(True, "", kernels)
    return ProfileResult(False, _failure_reason(returncode, log, stdout, stderr), [])


def _kernel_profile(name: str, runs: list[dict[str, float | None]], ns_scale: float) -> KernelProfile:
    values = {field: _mean(run.get(metric) for run in runs) for field, metric in METRICS.items()}
    if values["duration_ns"] is not None:
        values["duration_ns"] *= ns_scale
    stalls = {}
    for column in runs[0]:
        match = _STALL.match(column)
        if match and match.group(1) not in _NOT_A_STALL:
            value = _mean(run[column] for run in runs)
            if value:  # None or 0: nothing to report
                stalls[match.group(1)] = value
    top = sorted(stalls.items(), key=lambda item: item[1], reverse=True)[:TOP_STALLS]
    return KernelProfile(name=name, top_stalls=top, **values)


def _number(cell: str) -> float | None:
    try:
        return float(cell.replace(",", "").strip())
    except ValueError:
        return None  # "n/a", "", or a text column


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    # A session of its own, so a timeout ends the profiled Python process too, not only ncu.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, **env} if env else None)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, stdout, stderr


def _failure_reason(returncode: int, log: str, stdout: str, stderr: str) -> str:
    text = "\n".join([log, stdout, stderr])
    reason = f"ncu exited with code {returncode} and profiled no kernels"
    if "ERR_NVGPUCTRPERM" in text:
        reason += (
            "; no permission for GPU performance counters: run as root or allow profiling for all users"
            " (NVreg_RestrictProfilingToAdminUsers=0, see https://developer.nvidia.com/ERR_NVGPUCTRPERM)"
        )
    # Without kernels the log holds only ncu's messages, e.g. the kernels a regex could have matched.
    messages = [line for line in log.splitlines() if line.strip() and not line.startswith("==PROF==")]
    tail = stderr.strip().splitlines()[-8:]  # the script's own traceback, if it failed
    return "\n".join([reason, *messages[-12:], *tail])


def _ncu_version(ncu: str) -> str:
    try:
        out = subprocess.run([ncu, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "ncu (version unknown)"
    version = next((line.split()[1] for line in out.splitlines() if line.startswith("Version ")), None)
    return f"ncu {version}" if version else "ncu (version unknown)"


def _version_key(path: str) -> tuple[int, ...]:
    # /opt/nvidia/nsight-compute/2025.10.0/ncu sorts after 2025.3.1, which a string sort gets wrong.
    return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.name))


NVTX_RANGE = "kernelwright-candidate"

_TARGET = """\
# Written by kernelwright: builds the candidate as the evaluator does and runs it
# once inside an NVTX range, after warm-up, for Nsight Compute to measure.
import torch
from kernelwright.evaluate.candidate_role import build_model, import_candidate

data = torch.load({inputs!r}, weights_only=False)
model, _ = build_model(import_candidate({candidate!r}), data["init"], data["state"], data["dtype"], "cuda")
args = [x.cuda() if isinstance(x, torch.Tensor) else x for x in data["inputs"]]
with torch.no_grad():
    for _ in range(3):
        model(*args)
    torch.cuda.synchronize()
    with torch.cuda.nvtx.range({nvtx!r}):
        model(*args)
    torch.cuda.synchronize()
"""


def target_script(candidate: Path, inputs: Path) -> str:
    """The script that `profile_script` runs under ncu for one candidate (see NVTX_RANGE)."""
    return _TARGET.format(inputs=str(inputs), candidate=str(candidate), nvtx=NVTX_RANGE)
