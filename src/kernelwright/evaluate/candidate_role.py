"""The candidate worker: imports the candidate, builds `ModelNew`, runs and times it.

Nothing here judges the candidate: outputs go back to the reference worker as
shared tensors. The candidate runs in this process only, and this process
never holds the reference model or its outputs.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from kernelwright.evaluate import inputs, launch_check, timing, wire
from kernelwright.evaluate.reference import INIT_SEED
from kernelwright.evaluate.worker import import_file


class CandidateRole:
    def __init__(self, device: str) -> None:
        self.device = device
        self.module: Any = None
        self.model: torch.nn.Module | None = None
        self.inputs: list[Any] = []
        self.last_outputs: Any = None  # kept alive until the reference worker has compared them

    def handle(self, cmd: str, args: dict[str, Any], blobs: list[bytes]) -> tuple[Any, list[bytes]]:
        return getattr(self, f"cmd_{cmd}")(blobs, **args)

    def warm_up(self) -> None:
        """Start CUDA and the profiler once before any candidate code is here (about 4 s on an H100 machine)."""
        if self.device == "cuda":
            launch_check.measure(lambda: torch.ones(1, device="cuda") + 1, [], "cuda", [])

    def cmd_load(self, blobs: list[bytes], path: str) -> tuple[Any, list[bytes]]:
        """Import the candidate file: kernels compiled at import time (NVRTC, C++, load_inline) build now."""
        if self.device == "cpu":
            from kernelwright.backends import triton as triton_backend

            triton_backend.install_interpreter_launch_record()
        self.module = import_candidate(path)
        return {}, []

    def cmd_build(self, blobs: list[bytes], dtype: str | None) -> tuple[Any, list[bytes]]:
        init, state = pickle.loads(blobs[0]), pickle.loads(blobs[1])  # from the reference worker: trusted
        self.model, loaded = build_model(self.module, init, state, dtype, self.device)
        return {"weights_loaded": loaded}, []

    def cmd_run(self, blobs: list[bytes], poison: list) -> tuple[Any, list[bytes]]:
        """Call the candidate once (on new inputs when sent, else on the last ones), outputs poisoned first."""
        if blobs:
            self.inputs = pickle.loads(blobs[0])
        inputs.poison(poison, self.device)
        with torch.no_grad():
            outputs = self.model(*self.inputs)
        self._sync()
        self.last_outputs = _tensors(outputs)
        return {}, [wire.dump_tensors(self.last_outputs)]

    def cmd_time(self, blobs: list[bytes], options: dict[str, Any]) -> tuple[Any, list[bytes]]:
        sets = pickle.loads(blobs[0])
        result = timing.time_calls(self.model, sets, self.device, **options)
        self.last_outputs = [_tensors(out) for out in result.last_outputs]
        return result.summary(), [wire.dump_tensors(self.last_outputs)]

    def cmd_launches(self, blobs: list[bytes], kernel_names: list[str]) -> tuple[Any, list[bytes]]:
        return launch_check.measure(self.model, self.inputs, self.device, kernel_names), []

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


def import_candidate(path: str) -> Any:
    module = import_file(path, "kernelwright_candidate_" + hashlib.sha256(path.encode()).hexdigest()[:12])
    if not isinstance(getattr(module, "ModelNew", None), type):
        raise TypeError(f"{Path(path).name} defines no class ModelNew")
    return module


def build_model(module: Any, init: list[Any], state: dict[str, torch.Tensor], dtype: str | None,
                device: str) -> tuple[torch.nn.Module, bool]:
    """Construct ModelNew with the reference's constructor arguments and, where the keys match, its weights.

    Returns the model and whether the reference's weights were loaded (else the
    shared seed is what makes the parameters equal, as in KernelBench).
    """
    torch.manual_seed(INIT_SEED)
    model = module.ModelNew(*init).to(device)
    if dtype is not None:
        model.to(inputs.torch_dtype(dtype))
    own = model.state_dict()
    loaded = set(own) == set(state) and all(own[k].shape == state[k].shape for k in own)
    if loaded:
        model.load_state_dict(state)
    return model.eval(), loaded


class WrongOutput(TypeError):
    """The candidate returned something other than tensors."""


def _tensors(outputs: Any) -> list[torch.Tensor]:
    try:
        return inputs.output_list(outputs)
    except TypeError as e:
        raise WrongOutput(str(e)) from None
