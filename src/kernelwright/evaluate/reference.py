"""The reference worker: the task's side of every comparison, out of the candidate's reach.

It imports the task, makes every input, runs the reference, holds the expected
outputs and the pristine copies of the inputs, and judges what the candidate
returns. It also times the baselines with the same code that times candidates,
and computes the speed-of-light floor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from kernelwright import environment
from kernelwright.evaluate import correctness, inputs, roofline, timing, wire
from kernelwright.evaluate.worker import import_file
from kernelwright.paths import cache_dir
from kernelwright.task import TaskError

# Both Model and ModelNew are built right after this seed, so that candidates
# that create their parameters in the same order get the same values even when
# their state_dict keys differ from the reference's (the KernelBench convention).
INIT_SEED = 42


class ReferenceRole:
    def __init__(self, device: str) -> None:
        self.device = device
        self.path: Path | None = None
        self.module: Any = None
        self.meta: dict[str, Any] = {}
        # Built once per shape variant and kept while the task stays loaded:
        # model, constructor arguments, output specs.
        self.built: dict[int, dict[str, Any]] = {}
        self.tolerance: correctness.Tolerance | None = None
        self.work: roofline.Work | None = None
        self.trial: dict[str, Any] = {}
        self.sets: list[dict[str, Any]] = []  # timing sets (variant 0), reused for every candidate

    def handle(self, cmd: str, args: dict[str, Any], blobs: list[bytes]) -> tuple[Any, list[bytes]]:
        return getattr(self, f"cmd_{cmd}")(blobs, **args)

    # -- the task ----------------------------------------------------------------------------

    def cmd_load(self, blobs: list[bytes], path: str, meta: dict[str, Any]) -> tuple[Any, list[bytes]]:
        self.path, self.meta = Path(path), meta
        try:
            module = import_file(path, f"kernelwright_task_{Path(path).stem}")
        except Exception as e:  # noqa: BLE001
            raise TaskError(f"{path}: importing the task raised {type(e).__name__}: {e}") from None
        if not (isinstance(getattr(module, "Model", None), type) and issubclass(module.Model, torch.nn.Module)):
            raise TaskError(f"{path}: Model is not a torch.nn.Module subclass")
        self.module = module
        return {"variants": 1 + len(meta["shape_variants"])}, []

    def cmd_build(self, blobs: list[bytes], variant: int, weights: bool = True) -> tuple[Any, list[bytes]]:
        """Build the reference for a shape variant (once); send the candidate's constructor arguments and
        weights, unless no candidate is there to receive them."""
        if variant not in self.built:
            self.built[variant] = self._build(variant)
        built = self.built[variant]
        if not weights:
            return built["result"], []
        # Shared anew for every candidate: a blob can be received once (see wire.dump_tensors).
        return built["result"], [wire.dump_tensors(built["init"]), wire.dump_tensors(built["model"].state_dict())]

    def _build(self, variant: int) -> dict[str, Any]:
        with self._variant(variant):
            init = self._task_call("get_init_inputs")
            torch.manual_seed(INIT_SEED)
            try:
                model = self.module.Model(*init)
            except Exception as e:  # noqa: BLE001
                raise TaskError(f"{self.path}: Model(*get_init_inputs()) raised {type(e).__name__}: {e}") from None
            model = model.to(self.device).eval()
            if self._dtype() is not None:
                model.to(self._dtype())  # floating parameters and buffers only
            sample = self._make_inputs(seed=0, distribution=None)
        with torch.no_grad():
            try:
                outputs = inputs.output_list(model(*sample))
            except TypeError as e:
                raise TaskError(f"{self.path}: Model.forward must return tensors: {e}") from None
            except Exception as e:  # noqa: BLE001
                raise TaskError(f"{self.path}: Model.forward raised {type(e).__name__}: {e}") from None
            if variant == 0:
                self.work = roofline.count_work(model, sample, self.device)
                self.tolerance = correctness.tolerance_for(
                    str(outputs[0].dtype).removeprefix("torch."), self.meta.get("precision"),
                    self.work.reference_units, self.meta.get("atol"), self.meta.get("rtol"))
        result = {"output_specs": inputs.specs(outputs), "tolerance": self.tolerance.to_dict(),
                  "dtype": self.meta.get("dtype")}
        return {"model": model, "result": result, "init": init}

    # -- correctness trials ------------------------------------------------------------------

    def cmd_trial(self, blobs: list[bytes], variant: int, seed: int,
                  distribution: dict | None) -> tuple[Any, list[bytes]]:
        """Fresh inputs for one trial; the reference runs only after the candidate's first call."""
        with self._variant(variant):
            trial_inputs = self._make_inputs(seed, distribution)
        self.trial = {"inputs": trial_inputs, "pristine": inputs.clone(trial_inputs), "expected": None,
                      "model": self.built[variant]["model"]}
        return {}, [wire.dump_tensors(trial_inputs)]

    def cmd_check(self, blobs: list[bytes]) -> tuple[Any, list[bytes]]:
        """Judge the candidate's outputs for the current trial (running the reference the first time)."""
        if self.trial["expected"] is None:
            self.trial["expected"] = self._reference(self.trial["model"], self.trial["pristine"])
        return self._judge(wire.load_tensors(blobs[0]), self.trial), []

    # -- timing ------------------------------------------------------------------------------

    def cmd_timing_sets(self, blobs: list[bytes], count: int) -> tuple[Any, list[bytes]]:
        """Input sets for timing (variant 0), with their expected outputs, so timed calls are checked too."""
        self._ensure_sets(count)
        return {}, [wire.dump_tensors([s["inputs"] for s in self.sets])]

    def _ensure_sets(self, count: int) -> None:
        if len(self.sets) != count:
            self.sets = []
            for k in range(count):
                set_inputs = self._make_inputs(seed=1000 + k, distribution=None)
                self.sets.append({"inputs": set_inputs, "pristine": inputs.clone(set_inputs),
                                  "expected": self._reference(self.built[0]["model"], set_inputs)})

    def cmd_check_sets(self, blobs: list[bytes]) -> tuple[Any, list[bytes]]:
        outputs = wire.load_tensors(blobs[0])
        for k, (s, out) in enumerate(zip(self.sets, outputs)):
            result = self._judge(out, s)
            if not result["ok"]:
                result["message"] = f"timed call on input set {k}: {result['message']}"
                return result, []
        return {"ok": True}, []

    def cmd_baselines(self, blobs: list[bytes], names: list[str], task_id: str, sets: int, drift: float,
                      timing_options: dict[str, Any]) -> tuple[Any, list[bytes]]:
        """Time eager PyTorch and torch.compile on the timing sets (made here when no candidate was timed
        first); cached per task, device, versions and timing protocol. On a cache hit eager is timed again,
        and where it is more than 1 + `drift` times faster or slower than the cached time, the machine's
        speed has moved: the cache is dropped and every baseline measured anew."""
        self._ensure_sets(sets)
        key = json.dumps([task_id, environment.current(self.device).key(), timing_options, len(self.sets),
                          timing.PROTOCOL])
        path = cache_dir("baselines") / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
        cached = json.loads(path.read_text()) if path.exists() else {}
        if cached:
            now = self._baseline("eager", timing_options)
            then, fresh = cached.get("eager", {}).get("median_ms"), now.get("median_ms")
            if then is None or fresh is None or max(fresh, then) / min(fresh, then) > 1 + drift:
                cached = {"eager": now}
        for name in names:
            if name not in cached:
                cached[name] = self._baseline(name, timing_options)
        path.write_text(json.dumps(cached))
        return {name: cached[name] for name in names}, []

    def _baseline(self, name: str, timing_options: dict[str, Any]) -> dict[str, Any]:
        """One baseline's timing summary ("eager" or "compile"), or its error."""
        try:
            model = self.built[0]["model"]
            fn = model if name == "eager" else torch.compile(model)
            return timing.time_calls(fn, [s["inputs"] for s in self.sets], self.device, **timing_options).summary()
        except Exception as e:  # noqa: BLE001  (a baseline that cannot run is reported, not fatal)
            return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}

    def cmd_floor(self, blobs: list[bytes]) -> tuple[Any, list[bytes]]:
        ceil = roofline.ceilings(self.device)
        floor = roofline.speed_of_light(self.work, ceil, self.tolerance.precision)
        return {"floor_ms": floor.seconds * 1e3, "unit": floor.unit, "bound": floor.bound,
                "flops": self.work.flops, "bytes": self.work.bytes,
                "margin": roofline.IMPOSSIBLE_MARGIN}, []

    def cmd_save_inputs(self, blobs: list[bytes], path: str) -> tuple[Any, list[bytes]]:
        """Write what the profiler's process needs to build and run the candidate once."""
        built = self.built[0]
        torch.save({"init": built["init"], "dtype": self.meta.get("dtype"),
                    "state": {k: v.cpu() for k, v in built["model"].state_dict().items()},
                    "inputs": [x.cpu() if isinstance(x, torch.Tensor) else x for x in self.sets[0]["inputs"]]},
                   path)
        return {}, []

    # -- helpers -----------------------------------------------------------------------------

    def _judge(self, outputs: Any, trial: dict[str, Any]) -> dict[str, Any]:
        changed = inputs.first_changed(trial["inputs"], trial["pristine"])
        if changed is not None:
            return {"ok": False, "message": f"the candidate modified input {changed} in place"}
        try:
            got = inputs.output_list(outputs)
        except TypeError as e:
            return {"ok": False, "message": str(e)}
        return correctness.compare(got, trial["expected"], self.tolerance).to_dict()

    def _reference(self, model: torch.nn.Module, args: list[Any]) -> list[torch.Tensor]:
        with torch.no_grad(), _exact_fp32():
            expected = inputs.output_list(model(*inputs.clone(args)))
        if self.device == "cuda":
            torch.cuda.synchronize()
        return expected

    def _make_inputs(self, seed: int, distribution: dict | None) -> list[Any]:
        torch.manual_seed(seed)
        # Factory calls in get_inputs() (torch.randn, ...) allocate on the evaluation
        # device: drawing gigabytes of inputs on the CPU would dominate a GPU evaluation.
        with torch.device(self.device):
            raw = self._task_call("get_inputs")
        if not isinstance(raw, (list, tuple)):
            raise TaskError(f"{self.path}: get_inputs() must return a list, got {type(raw).__name__}")
        drawn = inputs.redraw(list(raw), distribution, seed)
        return inputs.to_device(drawn, self.device, self._dtype())

    def _task_call(self, name: str) -> Any:
        try:
            return getattr(self.module, name)()
        except Exception as e:  # noqa: BLE001
            raise TaskError(f"{self.path}: {name}() raised {type(e).__name__}: {e}") from None

    def _variant(self, variant: int) -> contextlib.AbstractContextManager:
        overrides = {} if variant == 0 else self.meta["shape_variants"][variant - 1]
        missing = [name for name in overrides if not hasattr(self.module, name)]
        if missing:
            raise TaskError(f"{self.path}: shape variant {variant} sets {', '.join(missing)}, "
                            "which the task does not define")
        return inputs.variant_globals(self.module, overrides)

    def _dtype(self) -> torch.dtype | None:
        return inputs.torch_dtype(self.meta.get("dtype"))


@contextlib.contextmanager
def _exact_fp32() -> Iterator[None]:
    """Expected outputs in true float32: PyTorch's default TF32 convolutions would make the reference
    itself the least accurate party. (The tolerance still admits TF32 where the reference uses it.)"""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
