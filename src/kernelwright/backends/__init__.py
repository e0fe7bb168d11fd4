"""How candidates build their kernels: Triton, CUDA through NVRTC or load_inline, CPU C++.

Candidates import the helpers here (`kernelwright.backends.cuda`, `kernelwright.backends.cpu`);
the evaluator reads `launches` to learn which custom kernels ran.
"""

from __future__ import annotations


class CompileError(Exception):
    """A kernel's source did not compile; `log` holds the compiler's own words."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message if not log else f"{message}\n{log}")
        self.log = log


class NamedItems:
    """`obj.name` as `obj["name"]`: how candidates reach the functions of a compiled module."""

    def __getattr__(self, name: str):  # noqa: ANN204  (the subclass's item type)
        if name.startswith("_"):  # copy and pickle probe private names before __init__ has run
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(error.args[0]) from None


# The backend names used in static reports, verdicts and candidate metadata.
TRITON = "triton"
CUDA_NVRTC = "cuda"
CUDA_INLINE = "cuda_inline"
CPU = "cpu"
GPU_BACKENDS = frozenset({TRITON, CUDA_NVRTC, CUDA_INLINE})
