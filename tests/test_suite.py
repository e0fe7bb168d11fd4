"""The built-in suite: it loads, covers its categories, and no task is degenerate.

Non-degeneracy runs each task's small (last) shape variant on the CPU, in the
task's own dtype, the way the reference worker builds it: every input must
matter (replacing it with a fresh draw moves the output by well over the
tolerance a candidate gets), outputs must be finite and not nearly constant.
A task that fails here would let a kernel pass while ignoring part of its work.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from kernelwright.evaluate.correctness import TOLERANCES
from kernelwright.evaluate.inputs import redraw, to_device, torch_dtype, variant_globals
from kernelwright.suites import SUITES_DIR, builtin_path, builtin_tasks
from kernelwright.task import Task

TASKS = builtin_tasks()
CATEGORIES = ("pointwise", "reduce", "norm", "softmax", "loss", "matmul", "conv", "attention", "fused")
# Each docstring names the real model its shapes come from; one of these must appear.
MODELS = ("Llama", "Mistral", "Mixtral", "Gemma", "GPT-2", "OPT", "BERT", "DistilBERT", "ViT", "DiT",
          "ResNet", "MobileNet", "SENet", "YOLO", "PointNet", "NeRF", "Stable Diffusion", "CycleGAN",
          "Decision Transformer", "ADM")
SMALL_MAX_ELEMENTS = 300_000
MAIN_MAX_BYTES = 2 * 1024**3
INIT_SEED = 42  # as the reference worker builds Model
TINY = 1e-12

ids = [t.name for t in TASKS]


def import_task(task: Task) -> ModuleType:
    name = f"kernelwright_suite_test_{task.name}"
    spec = importlib.util.spec_from_file_location(name, task.path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def threshold(task: Task, model: torch.nn.Module) -> float:
    """Ten times the loosest tolerance a candidate for this task can get on a GPU."""
    dtype = task.meta.dtype or "float32"
    precision = task.meta.precision or {"bfloat16": "bf16", "float16": "fp16"}.get(dtype, "fp32")
    if precision == "fp32" and any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules()):
        precision = "tf32"  # cuDNN's default TF32 convolutions lower the reference's own arithmetic
    rtol, atol = TOLERANCES[precision]
    return 10 * max(rtol, atol, task.meta.rtol or 0.0, task.meta.atol or 0.0)


def outputs_of(model: torch.nn.Module, args: list[Any]) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])
    return list(out) if isinstance(out, (tuple, list)) else [out]


def rms(t: torch.Tensor) -> float:
    return float(t.float().square().mean().sqrt())


def relative_change(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x.float() - y.float()).abs().max()) / (rms(x) + TINY) for x, y in zip(a, b))


def build_small(task: Task) -> tuple[ModuleType, torch.nn.Module, list[Any], list[Any]]:
    """Model and two independent input draws for the task's last (small) variant, in its dtype."""
    module = import_task(task)
    dtype = torch_dtype(task.meta.dtype)
    with variant_globals(module, task.meta.shape_variants[-1]):
        init = module.get_init_inputs()
        torch.manual_seed(INIT_SEED)
        model = module.Model(*init).eval()
        if dtype is not None:
            model.to(dtype)
        torch.manual_seed(0)
        base = to_device(list(module.get_inputs()), "cpu", dtype)
        torch.manual_seed(1)
        fresh = to_device(list(module.get_inputs()), "cpu", dtype)
    return module, model, base, fresh


# -- the suite as a whole ---------------------------------------------------------------------


def test_suite_loads_and_covers_categories():
    assert builtin_path() == SUITES_DIR / "builtin"
    assert len(TASKS) >= 40
    assert [t.name for t in TASKS] == sorted(t.name for t in TASKS)
    prefixes = {t.name.split("_", 1)[0] for t in TASKS}
    assert prefixes <= set(CATEGORIES), f"unknown categories: {prefixes - set(CATEGORIES)}"
    assert set(CATEGORIES) <= prefixes, f"uncovered categories: {set(CATEGORIES) - prefixes}"


@pytest.mark.parametrize("task", TASKS, ids=ids)
def test_task_metadata(task: Task):
    doc = ast.get_docstring(ast.parse(task.source))
    assert doc, "no module docstring"
    lines = [line for line in doc.splitlines() if line.strip()]
    assert 2 <= len(lines) <= 4, f"docstring has {len(lines)} lines, want 2 to 4"
    assert any(m.lower() in doc.lower() for m in MODELS), "docstring names no source model"
    assert re.search(r"^# eager on H100 ~ [\d.]+ ms \(estimate: .+\)$", task.source, re.M), "no eager estimate"
    assert task.meta.shape_variants, "no shape variants"
    assert task.meta.precision != "tf32"
    assert not task.meta.allow_ops

    module = import_task(task)
    for variant in task.meta.shape_variants:
        assert set(variant) <= set(vars(module)), f"variant {variant} names no module global"
    # Main shape: inputs under ~2 GB in the task's dtype (drawn on the meta device, nothing allocated).
    dtype = torch_dtype(task.meta.dtype)
    with torch.device("meta"):
        main = module.get_inputs()
    total = sum(x.numel() * (x.element_size() if dtype is None or not x.is_floating_point()
                             else torch.empty((), dtype=dtype).element_size())
                for x in main if isinstance(x, torch.Tensor))
    assert total <= MAIN_MAX_BYTES, f"main-shape inputs take {total / 1e9:.2f} GB"
    # Small variant, listed last.
    with variant_globals(module, task.meta.shape_variants[-1]):
        with torch.device("meta"):
            small = module.get_inputs()
    elements = sum(x.numel() for x in small if isinstance(x, torch.Tensor))
    assert elements <= SMALL_MAX_ELEMENTS, f"last (small) variant has {elements} input elements"


# -- non-degeneracy ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS, ids=ids)
def test_task_is_not_degenerate(task: Task):
    _, model, base, fresh = build_small(task)
    # Forward runs outside the variant's globals, as in the reference worker: it must not read them.
    start = time.perf_counter()
    out = outputs_of(model, base)
    timings = [time.perf_counter() - start]
    for i, o in enumerate(out):
        if o.is_floating_point():
            assert torch.isfinite(o).all(), f"output {i} has non-finite values"
        if o.numel() > 1:
            spread = float(o.float().std()) / (rms(o) + TINY)
            assert spread > 1e-3, f"output {i} is nearly constant (std/rms = {spread:.2e})"

    for i, o in enumerate(out):  # an output that equals an input is an identity: nothing to compute
        for j, x in enumerate(base):
            if isinstance(x, torch.Tensor) and x.shape == o.shape and x.dtype == o.dtype:
                assert not torch.allclose(o, x, rtol=1e-3, atol=1e-3 * rms(x)), f"output {i} equals input {j}"

    limit = threshold(task, model)
    for i, x in enumerate(base):
        if not isinstance(x, torch.Tensor):
            continue
        assert not torch.equal(x, fresh[i]), f"input {i}: get_inputs() draws the same values for every seed"
        args = list(base)
        args[i] = fresh[i]
        start = time.perf_counter()
        changed = outputs_of(model, args)
        timings.append(time.perf_counter() - start)
        delta = relative_change(out, changed)
        assert delta > limit, f"replacing input {i} changes the output by {delta:.2e} of its rms (want > {limit:.0e})"

    # The evaluator also draws from other distributions unless inputs are pinned: outputs stay finite.
    if not task.meta.pinned_inputs:
        for k, distribution in enumerate(task.meta.distributions):
            drawn = redraw(base, distribution, seed=k + 1)
            for j, o in enumerate(outputs_of(model, drawn)):
                if o.is_floating_point():
                    assert torch.isfinite(o).all(), f"output {j} not finite under {distribution}"

    assert min(timings) < 0.2, f"small variant's forward takes {min(timings):.2f} s on this CPU"
