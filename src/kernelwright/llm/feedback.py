"""The evaluator's words, made short enough for a prompt: failures, timings, hardware, history, rules.

Everything here reads the verdict JSON (evaluate/verdict.py) and the static
rule tables (evaluate/rules.py) and returns plain strings and dicts for the
prompt templates, so the templates hold wording and no logic. Logs are cut to
the lines that name the problem: a compiler's `error:` lines with the source
line under each, or a Python traceback's frames in the candidate and its last
lines. Temporary paths are replaced by stable names, so the same failure makes
the same prompt (and hits the response cache).
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

from kernelwright import backends, environment
from kernelwright.evaluate import rules as R
from kernelwright.paths import cache_dir

LOG_LINES = 30  # lines of a compile log or traceback kept in a prompt
LOG_CHARS = 2500
ERRORS_KEPT = 4  # compiler errors quoted; the first is usually the cause, the rest its echoes
_TEMP_PATHS = (
    (re.compile(r"/\S*kernelwright-candidate-[^/\s]+/[^\s\"',:]+\.py"), "candidate.py"),
    (re.compile(r"/\S*kernelwright-cpu-[^/\s]+/"), ""),
    (re.compile(r"/tmp/[^\s\"',:]+/"), ""),
)
_COMPILER_ERROR = re.compile(r"\berror\b", re.IGNORECASE)
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (.+)$')

# One line per static rule id: what it forbids. The tables behind each rule are in rules.py.
RULE_TEXT = {
    R.SYNTAX: "the file must parse as Python",
    R.NO_MODEL_NEW: "the file must define class ModelNew with the reference Model's constructor arguments",
    R.TORCH_COMPUTE: "no PyTorch compute outside __init__: forward may only allocate, take views, query "
                     "shapes and launch your kernels",
    R.TRY_EXCEPT: "no try/except or error suppression: a failing kernel must fail, not fall back",
    R.REFERENCE_MODEL: "never import, call or subclass the reference Model",
    R.STREAMS_EVENTS: "no streams, events, graphs or synchronization: the evaluator owns them",
    R.TIMING_PATCH: "no clocks, profilers or patching: the evaluator owns timing",
    R.THREADS_PROCESSES: "no threads, processes or signal handlers",
    R.INTROSPECTION: "no introspection (sys, inspect, gc, ctypes, exec/eval, dunder attributes)",
    R.IO: "no files, network or environment changes",
    R.TENSOR_SUBCLASS: "no tensor subclasses, torch.compile, torch.jit or dispatch overrides",
    R.NO_CUSTOM_KERNEL: "at least one kernel of your own must be defined and launched in forward",
    R.GLOBAL_STATE: "no state written from forward (caches, mutable defaults): outputs are computed every call",
}

BACKEND_NAMES = {backends.TRITON: "Triton", backends.CUDA_NVRTC: "CUDA C++ through NVRTC",
                 backends.CUDA_INLINE: "CUDA C++ through load_inline", backends.CPU: "CPU C++ (OpenMP)"}


def approx_tokens(text: str) -> int:
    """Tokens as a budget counts them: about four characters each for code and English."""
    return (len(text) + 3) // 4


# -- failures ----------------------------------------------------------------------------------

def failure(verdict: dict[str, Any]) -> dict[str, Any]:
    """What went wrong, for a debugger: status, the reason's first line, and the one detail that matters
    (rule violations, a trimmed log, or the mismatch)."""
    details = verdict.get("details") or {}
    status = verdict.get("status", "")
    reason = _stable(str(verdict.get("reason", "")))
    found: dict[str, Any] = {"status": status, "reason": _first_line(reason), "violations": [], "log": "",
                             "mismatch": None}
    if details.get("violations"):
        found["violations"] = [f"line {v.get('line')}: [{v.get('rule')}] {v.get('message')}"
                               for v in details["violations"]]
    if details.get("mismatch"):
        found["mismatch"] = mismatch(details["mismatch"], details.get("trial"))
    elif status in ("compile_error", "runtime_error", "timeout"):
        text = details.get("log") or details.get("traceback") or reason
        found["log"] = trim_log(_stable(text))
        if not found["log"].strip():
            found["log"] = trim_log(reason)
    return found


def mismatch(found: dict[str, Any], trial: str | None) -> dict[str, str]:
    """The worst wrong element: which output, where, expected against got, and under which inputs."""
    shapes, _, inputs = (trial or "").partition(", seed ")
    error = found.get("error")
    return {
        "output": str(found.get("output")),
        "index": str(found.get("index")),
        "expected": _number(found.get("expected")),
        "got": _number(found.get("got")),
        "error": "-" if error is None else _number(error),
        "allowed": _number(found.get("allowed")),
        "wrong": f"{found.get('mismatched_elements')} of {found.get('elements')} elements",
        "shapes": shapes or "the timing inputs",
        "inputs": f"seed {inputs}" if inputs else "",
    }


def trim_log(text: str, lines: int = LOG_LINES, chars: int = LOG_CHARS) -> str:
    """The lines of a compile log or traceback that name the problem."""
    all_lines = [line.rstrip() for line in text.splitlines()]
    kept = (_compiler_errors(all_lines) or _traceback_tail(all_lines))[:lines] or all_lines[-lines:]
    out = "\n".join(kept)
    return out if len(out) <= chars else out[:chars] + "\n[...]"


def _compiler_errors(lines: list[str]) -> list[str]:
    """Each `error` line of a C/C++/CUDA compiler with the line before it when it says where
    ("In function ...") and the source line and caret after it."""
    kept: list[int] = []
    errors = 0
    for i, line in enumerate(lines):
        if _FRAME.match(line) or line.lstrip().startswith(("Traceback", "raise ")):
            continue
        if _COMPILER_ERROR.search(line) and re.search(r":\d+(:\d+)?:|\(\d+\):", line):
            errors += 1
            if errors > ERRORS_KEPT:
                break
            if i > 0 and "In function" in lines[i - 1]:
                kept.append(i - 1)
            kept.extend(range(i, min(i + 3, len(lines))))
    ordered = sorted(set(kept))
    return [lines[i] for i in ordered if not _FRAME.match(lines[i])]


def _traceback_tail(lines: list[str]) -> list[str]:
    """A Python traceback cut to the frames in the candidate and the exception after the last frame."""
    last_frame = max((i for i, line in enumerate(lines) if _FRAME.match(line)), default=None)
    if last_frame is None:
        return []
    kept = []
    for i, line in enumerate(lines[:last_frame + 1]):
        frame = _FRAME.match(line)
        if frame and frame.group(1) == "candidate.py":
            kept.append(f"candidate.py, line {frame.group(2)}, in {frame.group(3)}")
            if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]):
                kept.append(lines[i + 1])
    # The last frame's code line and carets are indented; the exception starts at the margin.
    start = last_frame + 1
    while start < len(lines) and lines[start].startswith("    "):
        start += 1
    return kept + [line for line in lines[start:] if line.strip()]


# -- performance -------------------------------------------------------------------------------

def performance(verdict: dict[str, Any]) -> dict[str, Any] | None:
    """Time, speedups, place on the roofline and the kernels seen, for a verdict that passed."""
    time = verdict.get("time")
    if verdict.get("status") != "passed" or not time:
        return None
    sol = verdict.get("speed_of_light") or {}
    kernels = [f"{k.get('name')}: {_number(k.get('ms'))} ms ({'yours' if k.get('custom') else 'PyTorch'}, "
               f"{k.get('launches')} launch{'es' if k.get('launches') != 1 else ''})"
               for k in (verdict.get("details") or {}).get("kernels", [])]
    return {
        "time_ms": _number(time.get("median_ms")),
        "spread_ms": _number(time.get("iqr_ms")),
        "speedups": {name: f"{value:.2f}x" for name, value in (verdict.get("speedup") or {}).items()},
        "baselines": {name: _number(t.get("median_ms")) for name, t in (verdict.get("baselines") or {}).items()},
        "sol_percent": f"{100 * sol['fraction']:.1f}" if sol.get("fraction") is not None else None,
        "floor_ms": _number(sol.get("floor_ms")) if sol.get("floor_ms") is not None else None,
        "bound": sol.get("bound"),
        "unit": sol.get("unit"),
        "custom_share": (f"{100 * verdict['custom_kernel_share']:.0f}%"
                         if verdict.get("custom_kernel_share") is not None else None),
        "kernels": kernels,
    }


def roofline(verdict: dict[str, Any] | None) -> str | None:
    """Where a passed candidate sits against the speed of light, in one sentence."""
    sol = (verdict or {}).get("speed_of_light") or {}
    if not sol.get("floor_ms"):
        return None
    work = f"{_count(sol.get('bytes', 0))}B to move" + (f" and {_count(sol['flops'])}FLOP" if sol.get("flops") else "")
    at = f"; the candidate runs at {100 * sol['fraction']:.1f}% of it" if sol.get("fraction") is not None else ""
    return (f"The task needs at least {work}: a floor of {_number(sol['floor_ms'])} ms on this device "
            f"({sol.get('bound')}-bound, {sol.get('unit')} arithmetic){at}.")


def profile(verdict: dict[str, Any] | None) -> list[str]:
    """One line per profiled kernel: time, % of compute and memory peak, DRAM, occupancy, top stalls."""
    found = (verdict or {}).get("profile") or {}
    if not found.get("available"):
        return []
    lines = []
    for k in found.get("kernels", []):
        stalls = ", ".join(f"{reason} {cycles:.1f}" for reason, cycles in k.get("top_stalls") or [])
        parts = [f"{k.get('name')}: {_number((k.get('duration_ns') or 0) / 1e3)} us"]
        for key, label in (("compute_sol_pct", "compute"), ("memory_sol_pct", "memory"),
                           ("dram_throughput_pct", "DRAM"), ("achieved_occupancy_pct", "occupancy")):
            if k.get(key) is not None:
                parts.append(f"{label} {k[key]:.0f}%")
        if stalls:
            parts.append(f"top stalls (cycles per instruction): {stalls}")
        lines.append(", ".join(parts))
    return lines


# -- hardware ----------------------------------------------------------------------------------

def hardware(verdict: dict[str, Any] | None, device: str) -> list[str]:
    """Facts about the device that judges candidates: its name, software, processors and memory, and the
    ceilings the evaluator measured (bandwidth, FLOP rate per arithmetic unit), when it has measured them."""
    env = dict((verdict or {}).get("environment") or {}) or environment.current(device).to_dict()
    lines = [f"device: {env.get('device_name')} ({env.get('device')})",
             "software: " + ", ".join(f"{name} {env[name]}" for name in ("torch", "cuda", "triton") if env.get(name))]
    if env.get("processors"):
        unit = "streaming multiprocessors" if env.get("device") == "cuda" else "cores"
        memory = f", {env['memory_gib']:g} GiB memory" if env.get("memory_gib") else ""
        lines.append(f"{env['processors']} {unit}{memory}")
    ceilings = _ceilings(env)
    if ceilings:
        lines.append(f"measured memory bandwidth: {ceilings['bandwidth'] / 1e9:.0f} GB/s")
        rates = ", ".join(f"{unit} {rate / 1e12:.1f} TFLOP/s" for unit, rate in ceilings.get("flops", {}).items())
        if rates:
            lines.append(f"measured matmul throughput: {rates}")
    return lines


def _ceilings(env: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluator's cached ceilings for this device and software (roofline.ceilings writes them);
    None when none were measured yet: measuring belongs to the evaluator, never to a prompt."""
    try:
        known = {f.name for f in fields(environment.Environment)}
        key = environment.Environment(**{k: v for k, v in env.items() if k in known}).key()
        return json.loads((cache_dir("ceilings") / f"{key}.json").read_text())
    except (OSError, TypeError, ValueError):
        return None


# -- history -----------------------------------------------------------------------------------

def history(entries: tuple[dict[str, Any], ...] | list[dict[str, Any]], budget_tokens: int) -> list[str]:
    """One line per earlier candidate of the run (technique, status, time), the newest that fit in
    `budget_tokens`, oldest first; a first line says how many older ones were left out."""
    lines = [_history_line(entry) for entry in entries]
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        cost = approx_tokens(line) + 1
        if used + cost > budget_tokens:
            break
        kept.append(line)
        used += cost
    kept.reverse()
    left_out = len(lines) - len(kept)
    return ([f"({left_out} earlier attempt{'s' if left_out != 1 else ''} not shown)"] if left_out else []) + kept


def _history_line(entry: dict[str, Any]) -> str:
    what = entry.get("intent", "?") + (f" ({entry['technique']})" if entry.get("technique") else "")
    if entry.get("status") == "passed" and entry.get("time_ms") is not None:
        speed = f", {entry['speedup']:.2f}x vs eager" if entry.get("speedup") else ""
        outcome = f"passed, {_number(entry['time_ms'])} ms{speed}"
    else:
        outcome = f"{entry.get('status')}: {_first_line(_stable(str(entry.get('reason', ''))), 90)}"
    return f"#{entry.get('seq')} {what}: {outcome}"


# -- rules -------------------------------------------------------------------------------------

def rules(backend: str) -> dict[str, Any]:
    """What the evaluator's static checks allow and forbid, read from its own tables."""
    banned: dict[str, list[str]] = {}
    for pattern, rule, _why in R.BANNED:
        if rule is not None:
            banned.setdefault(rule, []).append(pattern)
    for name, (rule, _why) in R.BANNED_BUILTINS.items():
        banned.setdefault(rule, []).append(f"{name}()")
    return {
        "backend": BACKEND_NAMES.get(backend, backend),
        "builders": sorted(name for name, built in R.KERNEL_BUILDERS.items() if built == backend),
        "rule_text": RULE_TEXT,
        "banned": {rule: ", ".join(names) for rule, names in banned.items()},
        "torch_calls": ", ".join(sorted(R.TORCH_FACTORIES)),
        "tensor_methods": ", ".join(sorted(R.TENSOR_ALLOWED_METHODS)),
        "imports": ", ".join(sorted(R.ALLOWED_IMPORT_ROOTS)),
        # C/C++ sources are checked by pattern; rules.py keeps those patterns' reasons only in this table.
        "c_rules": [why for _pattern, _rule, why in R._C_PATTERNS] if backend != backends.TRITON else [],
    }


# -- helpers -----------------------------------------------------------------------------------

def _stable(text: str) -> str:
    for pattern, replacement in _TEMP_PATHS:
        text = pattern.sub(replacement, text)
    return text


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def _count(value: float) -> str:
    """1.5e9 -> '1.5 G': sizes and work in a prompt, with SI prefixes."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.3g} "
