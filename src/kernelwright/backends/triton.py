"""Triton support: launch records for the CPU interpreter, and a `doctor` check.

On a GPU the profiler sees Triton's kernels. Under `TRITON_INTERPRET=1` they run
as Python on the host, invisible to it, so `install_interpreter_launch_record`
wraps the interpreter's launch entry to time each launch into `launches`.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from typing import Any

from kernelwright.backends import launches

# Marks our wrapper, so installing twice (or after a reload of this module) wraps once.
_MARK = "_kernelwright_records_launches"


def install_interpreter_launch_record() -> None:
    """Record every interpreted Triton launch as `launches.record(<kernel name>, seconds)`.

    Harmless without the interpreter: the wrapped class is only used under
    TRITON_INTERPRET=1. Idempotent.
    """
    try:
        from triton.runtime import interpreter
    except ImportError:
        warnings.warn("Triton is not installed; interpreted launches will not be recorded", stacklevel=2)
        return
    # triton 3.x launches `kernel[grid](...)` through InterpretedFunction.run(*args, grid, warmup, **kwargs).
    interpreted = getattr(interpreter, "InterpretedFunction", None)
    run = getattr(interpreted, "run", None)
    if run is None:
        warnings.warn(
            "this Triton has no triton.runtime.interpreter.InterpretedFunction.run; "
            "interpreted launches will not be recorded",
            stacklevel=2,
        )
        return
    if getattr(run, _MARK, False):
        return

    @functools.wraps(run)
    def recorded_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("warmup"):  # a warmup compiles nothing and runs nothing in the interpreter
            return run(self, *args, **kwargs)
        start = time.perf_counter()
        result = run(self, *args, **kwargs)
        launches.record(getattr(self.fn, "__name__", repr(self.fn)), time.perf_counter() - start)
        return result

    setattr(recorded_run, _MARK, True)
    interpreted.run = recorded_run


def available() -> tuple[bool, str]:
    """Whether Triton kernels can run here: on a GPU, or on the CPU through the interpreter."""
    try:
        import triton
    except ImportError as error:
        return False, f"Triton is not importable ({error})"
    import torch

    if torch.cuda.is_available():
        return True, f"Triton {triton.__version__} on {torch.cuda.get_device_name()}"
    if os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on", "yes"):  # as Triton reads it
        return True, f"Triton {triton.__version__}; no GPU, kernels run in the interpreter (TRITON_INTERPRET=1)"
    return False, f"Triton {triton.__version__}; no GPU: set TRITON_INTERPRET=1 to run kernels in the interpreter"
