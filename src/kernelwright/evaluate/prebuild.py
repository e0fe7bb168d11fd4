"""Prebuild: compile a candidate's CUDA and C++ sources in a pool of CPU processes, ahead of its evaluation.

A candidate builds its kernels when its module is imported in the candidate
worker, which holds a GPU. Both `kernelwright.backends.cuda` (NVRTC) and
`kernelwright.backends.cpu` (the system compiler) cache builds on disk by
source and flags, so a build done here turns that import into a cache hit, and
the compiling of the next candidates overlaps the timing of this one.

Only what can be read without running the candidate is prebuilt: calls to
`cuda.compile` / `cpu.compile` whose arguments are string literals or
module-level names bound to them. Triton kernels compile at their first launch
(they specialize on the arguments), and load_inline extensions stay with the
worker too. A failure here is ignored: the evaluation reports it in its own words.
"""

from __future__ import annotations

import ast
import multiprocessing as mp
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from kernelwright import pysource
from kernelwright.evaluate.process import sigint_blocked

BACKEND_MODULES = {"kernelwright.backends.cuda": "cuda", "kernelwright.backends.cpu": "cpu"}
# Pool processes are replaced after this many builds, so a compiler that leaks
# (or a poisoned cache handle) cannot accumulate.
TASKS_PER_PROCESS = 50


@dataclass(frozen=True)
class Build:
    backend: str  # "cuda" or "cpu"
    source: str
    options: tuple[str, ...] = ()


def find_builds(candidate_source: str) -> list[Build]:
    """The backend builds a candidate asks for with literal arguments, in source order."""
    try:
        tree = pysource.parse(candidate_source)
    except SyntaxError:
        return []
    modules = _backend_aliases(tree)  # local name -> "cuda" / "cpu"
    constants = _string_constants(tree)
    builds = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile"):
            continue
        backend = modules.get(ast.unparse(node.func.value))
        if backend is None or not node.args:
            continue
        source = _literal(node.args[0], constants)
        options_node = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg in ("options", "extra_flags")), None)
        options = _literal(options_node, constants) if options_node is not None else ()
        if any(k.arg == "arch" for k in node.keywords):
            continue  # built for another architecture than the one we would guess
        if isinstance(source, str) and isinstance(options, (tuple, list)) and all(isinstance(o, str) for o in options):
            builds.append(Build(backend, source, tuple(options)))
    return builds


def run_builds(builds: list[Build], arch: str | None) -> list[str]:
    """Build each (in a pool process); the errors, as text, for the log only."""
    from kernelwright.backends import CompileError, cpu, cuda

    errors = []
    for build in builds:
        try:
            if build.backend == "cuda":
                cuda.compile(build.source, build.options, arch=arch)
            else:
                cpu.compile(build.source, build.options)
        except (CompileError, OSError, RuntimeError, ImportError) as e:
            errors.append(f"{build.backend}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    return errors


class Prebuilder:
    """A pool of spawned CPU processes, each hiding the GPUs, that warms the build caches."""

    def __init__(self, workers: int, arch: str | None) -> None:
        self.arch = arch  # the evaluating GPUs' architecture (e.g. "sm_90"), or None on a CPU machine
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                         initializer=_prepare_process, max_tasks_per_child=TASKS_PER_PROCESS)

    def submit(self, candidate_source: str) -> Future | None:
        """Start building what the candidate will build; None when there is nothing to prebuild."""
        builds = find_builds(candidate_source)
        if not builds:
            return None
        with sigint_blocked():  # the pool starts its processes (and its manager thread) here
            return self._pool.submit(run_builds, builds, self.arch)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _prepare_process() -> None:
    # NVRTC and g++ need no GPU; a CUDA context here would take GPU memory from the evaluation.
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    # Ctrl-C reaches the whole process group; the run decides what stops, and closes this pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _backend_aliases(tree: ast.Module) -> dict[str, str]:
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "kernelwright.backends":
            for name in node.names:
                if name.name in ("cuda", "cpu"):
                    aliases[name.asname or name.name] = name.name
        elif isinstance(node, ast.Import):
            for name in node.names:
                if name.name in BACKEND_MODULES:
                    aliases[name.asname or name.name] = BACKEND_MODULES[name.name]
    return aliases


def _string_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level `NAME = <literal>` bindings (the usual home of a kernel's source)."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return constants


def _literal(node: ast.expr, constants: dict[str, object]) -> object:
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None
