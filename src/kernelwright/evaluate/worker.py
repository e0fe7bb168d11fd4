"""The worker process: a loop that answers the parent's commands for one role.

Two roles, never in one process: the "reference" worker loads the task, makes
inputs, runs the reference, times the baselines and compares outputs; the
"candidate" worker imports the candidate and runs it. So a candidate can never
find the reference's outputs in its own memory, and the code that judges it
lies out of its reach.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

from kernelwright.evaluate import wire

# How PyTorch says it ran out of memory on the GPU and on the CPU.
_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")
# Messages of device faults after which the CUDA context is unusable: the
# worker says so and the parent starts a fresh one.
_DEVICE_FAULTS = ("illegal memory access", "device-side assert", "unspecified launch failure",
                  "misaligned address", "illegal instruction", "CUDA error", "CUDA_ERROR")


def main(conn: Connection, role: str, device: str, log_path: str, env: dict[str, str]) -> None:
    _redirect_output(log_path)
    # Ctrl-C in a terminal reaches the whole process group: the parent decides
    # what stops, and a worker interrupted mid-trial would report a false error.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent while starting us
    os.environ.update(env)
    import torch.multiprocessing  # noqa: F401  (tensor sharing between processes)

    handler = _make_role(role, device)
    # Costly one-time setup (CUDA context, the profiler's CUPTI) happens here,
    # while a spare worker waits for its candidate, not during an evaluation.
    if hasattr(handler, "warm_up"):
        handler.warm_up()
    while True:
        try:
            message, blobs = wire.recv(conn)
        except (EOFError, OSError):
            return  # the parent is gone
        if message["cmd"] == "exit":
            return
        try:
            result, out_blobs = handler.handle(message["cmd"], message["args"], blobs)
            wire.send(conn, {"ok": True, "result": result}, out_blobs)
        except BaseException as e:  # noqa: BLE001  (every failure becomes a reply)
            error = describe_exception(e)
            try:
                wire.send(conn, {"ok": False, "error": error})
            except (BrokenPipeError, OSError):
                return
            if error["fatal"]:
                sys.stdout.flush()
                os._exit(3)


def import_file(path: str, name: str) -> ModuleType:
    """Import a task or candidate file as module `name`, registered in sys.modules
    (Triton and dataclasses look a function's module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def describe_exception(e: BaseException) -> dict[str, Any]:
    """Sort an exception into the kinds the evaluator turns into verdicts."""
    from kernelwright.backends import CompileError
    from kernelwright.task import TaskError

    message = f"{type(e).__name__}: {e}".strip()
    kind = "exception"
    if isinstance(e, CompileError) or _is_compile_error(e):
        kind = "compile"
    elif isinstance(e, TaskError):
        kind = "task"
    elif isinstance(e, wire.UnsafeBlob):
        kind = "unsafe"
    elif type(e).__name__ == "WrongOutput":
        kind = "output"
    elif "OutOfMemoryError" in type(e).__name__ or any(s in str(e) for s in _OUT_OF_MEMORY):
        kind = "oom"
    elif any(fault in str(e) for fault in _DEVICE_FAULTS):
        kind = "device_fault"
    fatal = kind in ("device_fault", "oom") or not isinstance(e, Exception)
    return {"kind": kind, "message": _first_lines(message), "traceback": traceback.format_exc()[-6000:],
            "fatal": fatal}


def _is_compile_error(e: BaseException) -> bool:
    # Triton raises CompilationError subclasses at first launch; load_inline
    # raises RuntimeError("Error building extension ...") or CalledProcessError.
    names = {cls.__name__ for cls in type(e).__mro__}
    return bool(names & {"CompilationError", "CalledProcessError"}) or "Error building extension" in str(e)


def _first_lines(text: str, lines: int = 12, chars: int = 3000) -> str:
    return "\n".join(text.splitlines()[:lines])[:chars]


def _redirect_output(log_path: str) -> None:
    """Send the worker's stdout and stderr (Python's and C's) to a log the parent watches for floods."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _make_role(role: str, device: str) -> Any:
    if role == "reference":
        from kernelwright.evaluate.reference import ReferenceRole

        return ReferenceRole(device)
    if role == "candidate":
        from kernelwright.evaluate.candidate_role import CandidateRole

        return CandidateRole(device)
    raise ValueError(f"unknown worker role {role!r}")
