"""The evaluator: one candidate in, one verdict out, through steps that each can say no.

    static check → compile (import) → correctness trials → launch check
      → timing (outputs checked) → baselines → speed of light → [profile]

The parent (this module) never imports candidate code and never touches a
tensor: it routes opaque blobs between the reference worker (one per task,
kept across candidates) and a candidate worker (a fresh process per
candidate, started ahead of need so the next evaluation does not wait for it).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kernelwright import backends, environment
from kernelwright.candidate import Candidate
from kernelwright.evaluate import checks
from kernelwright.evaluate.options import EvalOptions
from kernelwright.evaluate.process import WorkerError, WorkerFault, WorkerProcess
from kernelwright.evaluate.verdict import Status, Timing, Verdict
from kernelwright.task import Task, TaskError


class Rejection(Exception):
    """A step's verdict on the candidate: stop here and report it."""

    def __init__(self, status: Status, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.status, self.reason, self.details = status, reason, details


class Evaluator:
    """Evaluates candidates; owns the worker processes. Use as a context manager, or call close()."""

    def __init__(self, options: EvalOptions | None = None) -> None:
        self.options = options or EvalOptions()
        self._reference: _ReferenceSession | None = None
        self._spares: dict[tuple[str, bool], list[WorkerProcess]] = {}

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._reference:
            self._reference.close()
            self._reference = None
        for pool in self._spares.values():
            for worker in pool:
                worker.close()
        self._spares.clear()

    def evaluate(self, task: Task, candidate: Candidate) -> Verdict:
        """Judge one candidate for one task. Raises TaskError when the task itself is broken."""
        steps: dict[str, float] = {}
        verdict = Verdict(Status.PASSED, "")
        try:
            self._run(task, candidate, verdict, steps)
        except Rejection as r:
            verdict.status, verdict.reason = r.status, r.reason
            verdict.details.update(r.details)
        verdict.task = {"name": task.name, "id": task.id}
        verdict.candidate.setdefault("id", candidate.id)
        verdict.seconds = {name: round(s, 3) for name, s in steps.items()}
        return verdict

    def baselines(self, task: Task) -> tuple[dict[str, Timing], dict[str, str]]:
        """(timings, errors) of the baselines on this evaluator's device, measured as for a candidate."""
        device = self.options.device or environment.default_device()
        return self._reference_session(task, device).baselines(self.options)

    # -- the steps ---------------------------------------------------------------------------

    def _run(self, task: Task, candidate: Candidate, verdict: Verdict, steps: dict[str, float]) -> None:
        opts = self.options
        clock = _step_clock(steps)

        with clock("static"):
            report = checks.check_candidate(candidate.source, allowed_ops=(*task.meta.allow_ops, *opts.allow_ops))
        verdict.candidate = {"id": candidate.id, "backends": sorted(report.backends),
                             "kernels": sorted(report.kernel_names)}
        if not report.ok:
            raise Rejection(Status.STATIC_REJECTED, report.summary(),
                            violations=[{"rule": v.rule, "line": v.line, "message": v.message}
                                        for v in report.violations])

        device, interpreted = self._choose_device(report.backends)
        verdict.environment = environment.current(device).to_dict()
        if self.options.gpu is not None and device == "cuda":
            verdict.environment["gpu"] = self.options.gpu  # which GPU of the machine judged it
        if interpreted:
            verdict.flags.append("triton_interpreter: times are the interpreter's, not a kernel's")

        with clock("reference"):
            reference = self._reference_session(task, device)
        if device == "cpu" and backends.CUDA_INLINE in report.backends:
            # load_inline would spend minutes building an extension that cannot run here.
            raise Rejection(Status.UNSUPPORTED, _needs_gpu(report.backends))
        with _candidate_file(candidate) as path, self._candidate_worker(device, interpreted) as worker:
            with clock("compile"):
                self._call(worker, "load", opts.compile_timeout, path=str(path))
            if device == "cpu" and report.backends & backends.GPU_BACKENDS and not interpreted:
                raise Rejection(Status.UNSUPPORTED, _needs_gpu(report.backends))

            with clock("correctness"):
                verdict.correctness = self._correctness(task, reference, worker)
                if reference.variants > 1:  # the trials left the worker the last variant's model and inputs
                    self._use_task_shapes(reference, worker)
            with clock("launch_check"):
                launches, _ = self._call(worker, "launches", opts.step_timeout,
                                         kernel_names=sorted(report.kernel_names))
            verdict.custom_kernel_share = launches["share"]
            verdict.details["kernels"] = launches["kernels"]
            if launches["custom_launches"] == 0 or launches["custom_ms"] <= 0:
                raise Rejection(Status.REJECTED, "no custom kernel ran: all device work was PyTorch's "
                                f"({len(launches['kernels'])} kernel(s) seen, none of {sorted(report.kernel_names)})")

            with clock("timing"):
                verdict.time = self._timing(reference, worker)
        with clock("baselines"):
            verdict.baselines, failed = reference.baselines(opts)
        if failed:  # a baseline that cannot run (torch.compile can fail on a reference) is reported, not fatal
            verdict.details["baseline_errors"] = failed
        with clock("speed_of_light"):
            self._speed_of_light(reference, verdict)
        if opts.profile:
            with clock("profile"):
                verdict.profile = self._profile(candidate, reference, report)
        verdict.reason = _pass_reason(verdict)

    def _correctness(self, task: Task, reference: _ReferenceSession, worker: WorkerProcess) -> dict[str, Any]:
        """Every variant, seed and distribution; the candidate runs before and after the reference."""
        opts = self.options
        distributions: list[dict | None] = [None]  # None: the task's own get_inputs()
        if not task.meta.pinned_inputs:
            distributions += list(task.meta.distributions)
        trials = 0
        worst_error = 0.0
        for variant in range(reference.variants):
            built = self._build(reference, worker, variant)
            seeds = range(opts.seeds) if variant == 0 else range(opts.variant_seeds)
            for seed in seeds:
                for distribution in distributions:
                    where = _trial_name(task, variant, seed, distribution)
                    _, input_blobs = reference.request("trial", variant=variant, seed=seed, distribution=distribution)
                    for call, blobs in (("first call", input_blobs), ("second call", [])):
                        # The first call of all may compile (Triton compiles at first launch).
                        timeout = opts.compile_timeout if trials == 0 else opts.step_timeout
                        _, out_blobs = self._call(worker, "run", timeout, blobs=blobs, poison=built["output_specs"])
                        result = reference.judge("check", out_blobs)
                        if not result["ok"]:
                            raise Rejection(Status.INCORRECT, f"{where}, {call}: {result['message']}",
                                            mismatch=result.get("mismatch"), trial=where)
                        worst_error = max(worst_error, result["max_rel_error"])
                    trials += 1
        return {"trials": trials, "variants": reference.variants, "distributions": len(distributions),
                "max_rel_error": worst_error, "tolerance": reference.tolerance}

    def _build(self, reference: _ReferenceSession, worker: WorkerProcess, variant: int) -> dict[str, Any]:
        """Build the candidate for a shape variant, with the reference's constructor arguments and weights."""
        built, blobs = reference.request("build", variant=variant)
        self._call(worker, "build", self.options.compile_timeout, blobs=blobs, dtype=built["dtype"])
        return built

    def _use_task_shapes(self, reference: _ReferenceSession, worker: WorkerProcess) -> None:
        """Rebuild the candidate for the task's shapes and run it once on their inputs: the launch check
        runs the model and inputs the worker holds, and the timing that model. (This call's outputs go
        unjudged: the timing judges the outputs of every timed call.)"""
        built = self._build(reference, worker, variant=0)
        _, input_blobs = reference.request("trial", variant=0, seed=0, distribution=None)
        self._call(worker, "run", self.options.step_timeout, blobs=input_blobs, poison=built["output_specs"])

    def _timing(self, reference: _ReferenceSession, worker: WorkerProcess) -> Timing:
        _, set_blobs = reference.request("timing_sets", count=self.options.rotating_sets)
        summary, out_blobs = self._call(worker, "time", self.options.step_timeout, blobs=set_blobs,
                                        options=_timing_options(self.options))
        result = reference.judge("check_sets", out_blobs)
        if not result["ok"]:
            raise Rejection(Status.INCORRECT, result["message"], mismatch=result.get("mismatch"))
        return Timing(**summary)

    def _speed_of_light(self, reference: _ReferenceSession, verdict: Verdict) -> None:
        floor = reference.floor()
        fraction = floor["floor_ms"] / verdict.time.median_ms if verdict.time.median_ms > 0 else float("inf")
        verdict.speed_of_light = dict(floor, fraction=fraction)
        if verdict.time.median_ms < floor["floor_ms"] * floor["margin"]:
            raise Rejection(Status.REJECTED, f"impossible: {verdict.time.median_ms:.4g} ms is under the speed-of-light "
                            f"floor of {floor['floor_ms']:.4g} ms ({floor['bound']}-bound, {floor['unit']}); "
                            "the kernel cannot have done the work")
        best = max(verdict.speedup.values(), default=0.0)
        if best > self.options.review_speedup:
            verdict.flags.append(f"review: {best:.1f}x faster than the faster baseline")

    def _profile(self, candidate: Candidate, reference: _ReferenceSession,
                 report: checks.StaticReport) -> dict[str, Any]:
        from kernelwright.evaluate import profile

        available, why = profile.availability()
        if not available:
            return {"available": False, "reason": why}
        names = sorted(report.kernel_names)
        with tempfile.TemporaryDirectory(prefix="kernelwright-profile-", ignore_cleanup_errors=True) as tmp:
            folder = Path(tmp)
            reference.request("save_inputs", path=str(folder / "inputs.pt"))
            (folder / "candidate.py").write_text(candidate.source)
            script = folder / "run.py"
            script.write_text(profile.target_script(folder / "candidate.py", folder / "inputs.pt"))
            result = profile.profile_script(script, "|".join(names) if names else None,
                                            nvtx_range=profile.NVTX_RANGE, env=_worker_env(self.options))
        return result.to_dict()

    # -- workers -----------------------------------------------------------------------------

    def _choose_device(self, used: frozenset[str]) -> tuple[str, bool]:
        """(device, Triton interpreted?) A CPU-only candidate runs on the CPU even where a GPU is."""
        if self.options.device:
            device = self.options.device
        elif used and used <= {backends.CPU}:
            device = "cpu"
        else:
            device = environment.default_device()
        interpreted = device == "cpu" and self.options.interpret_triton and backends.TRITON in used
        return device, interpreted

    def _reference_session(self, task: Task, device: str) -> _ReferenceSession:
        current = self._reference
        if current and (current.task.id, current.device) == (task.id, device) and current.alive:
            return current
        if current:
            current.close()
            self._reference = None
        self._reference = _ReferenceSession(task, device, self.options)
        return self._reference

    def _candidate_worker(self, device: str, interpreted: bool) -> contextlib.closing[WorkerProcess]:
        """The oldest spare (the likeliest to be warm), or a new worker, closed after its one candidate;
        then top the spares up."""
        pool = self._spares.setdefault((device, interpreted), [])
        while pool and not pool[0].alive:
            pool.pop(0).close()
        worker = pool.pop(0) if pool else self._spawn_candidate(device, interpreted)
        while len(pool) < self.options.spare_workers:
            pool.append(self._spawn_candidate(device, interpreted))
        return contextlib.closing(worker)

    def _spawn_candidate(self, device: str, interpreted: bool) -> WorkerProcess:
        env = _worker_env(self.options)
        if interpreted:
            env["TRITON_INTERPRET"] = "1"
        return WorkerProcess("candidate", device, env, self.options.output_limit_bytes)

    def _call(self, worker: WorkerProcess, command: str, timeout: float, blobs: list[bytes] = (),
              **args: Any) -> tuple[Any, list[bytes]]:
        """A request to the candidate worker; its failures become the candidate's verdicts."""
        try:
            return worker.request(command, timeout, blobs=blobs, **args)
        except WorkerFault as fault:
            status = Status.TIMEOUT if fault.kind == "timeout" else Status.RUNTIME_ERROR
            raise Rejection(status, f"{command}: {fault.message}", log=fault.log_tail[-2000:]) from None
        except WorkerError as err:
            if err.fatal:
                worker.kill()
            status = {"compile": Status.COMPILE_ERROR, "output": Status.INCORRECT}.get(err.kind, Status.RUNTIME_ERROR)
            prefix = {"oom": "out of memory: ", "device_fault": "device fault: "}.get(err.kind, "")
            raise Rejection(status, f"{command}: {prefix}{err.message}", traceback=err.traceback) from None


class _ReferenceSession:
    """The reference worker for one task on one device, and what it has told us."""

    def __init__(self, task: Task, device: str, options: EvalOptions) -> None:
        self.task, self.device, self.options = task, device, options
        self.worker = WorkerProcess("reference", device, _worker_env(options), options.output_limit_bytes)
        self._baselines: dict[str, dict] | None = None
        self._floor: dict[str, Any] | None = None
        try:
            info, _ = self.request("load", path=str(task.path), meta=task.meta.to_dict())
            built, _ = self.request("build", variant=0, weights=False)
        except BaseException:  # a broken task leaves no worker or log behind
            self.worker.close()
            raise
        self.variants: int = info["variants"]
        self.tolerance: dict[str, Any] = built["tolerance"]

    @property
    def alive(self) -> bool:
        return self.worker.alive

    def request(self, command: str, blobs: list[bytes] = (), timeout: float | None = None,
                **args: Any) -> tuple[Any, list[bytes]]:
        """A request whose failure is the task's problem (or ours), never the candidate's."""
        try:
            return self.worker.request(command, timeout or self.options.step_timeout, blobs=blobs, **args)
        except WorkerError as err:
            if err.kind == "task":
                raise TaskError(err.message.removeprefix("TaskError: ")) from None
            raise TaskError(f"{self.task.path}: the reference failed in '{command}': {err.message}") from None
        except WorkerFault as fault:
            raise TaskError(f"{self.task.path}: the reference worker failed in '{command}': {fault.message}") from None

    def judge(self, command: str, candidate_blobs: list[bytes]) -> dict[str, Any]:
        """Ask the reference to judge the candidate's outputs. A blob that is not tensors is the candidate's fault."""
        try:
            result, _ = self.worker.request(command, self.options.step_timeout, blobs=candidate_blobs)
            return result
        except WorkerError as err:
            if err.kind == "unsafe":
                raise Rejection(Status.REJECTED, f"the candidate's outputs are not plain tensors: {err.message}") \
                    from None
            raise TaskError(f"{self.task.path}: checking outputs failed: {err.message}") from None

    def baselines(self, options: EvalOptions) -> tuple[dict[str, Timing], dict[str, str]]:
        """(timings, errors) of the baselines; measured once per session, cached on disk by the worker."""
        if self._baselines is None:
            self._baselines, _ = self.request("baselines", timeout=options.baseline_timeout,
                                              names=list(options.baselines), task_id=self.task.id,
                                              sets=options.rotating_sets, drift=options.baseline_drift,
                                              timing_options=_timing_options(options))
        timings = {name: Timing(**t) for name, t in self._baselines.items() if "error" not in t}
        return timings, {name: t["error"] for name, t in self._baselines.items() if "error" in t}

    def floor(self) -> dict[str, Any]:
        if self._floor is None:
            self._floor, _ = self.request("floor", timeout=self.options.baseline_timeout)
        return self._floor

    def close(self) -> None:
        self.worker.close()


@contextlib.contextmanager
def _candidate_file(candidate: Candidate) -> Iterator[Path]:
    """The candidate's source as a real file: Triton reads kernel source through `inspect`."""
    with tempfile.TemporaryDirectory(prefix="kernelwright-candidate-", ignore_cleanup_errors=True) as folder:
        path = Path(folder) / f"{candidate.name}_{candidate.id}.py"
        path.write_text(candidate.source)
        yield path


def _step_clock(steps: dict[str, float]) -> Callable[[str], contextlib.AbstractContextManager[None]]:
    """`with clock(name):` records the wall time of that evaluation step in `steps`."""

    @contextlib.contextmanager
    def clock(name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            steps[name] = time.perf_counter() - start

    return clock


def _worker_env(options: EvalOptions) -> dict[str, str]:
    """Environment for a worker: an evaluator pinned to one GPU shows its workers only that one."""
    return {"CUDA_VISIBLE_DEVICES": str(options.gpu)} if options.gpu is not None else {}


def _timing_options(options: EvalOptions) -> dict[str, Any]:
    return {"warmup_runs": options.warmup_runs, "min_runs": options.min_runs, "max_runs": options.max_runs,
            "budget_s": options.timing_budget_s}


def _trial_name(task: Task, variant: int, seed: int, distribution: dict | None) -> str:
    shape = "task shapes" if variant == 0 else f"shape variant {task.meta.shape_variants[variant - 1]}"
    if distribution is None:
        drawn = "task's get_inputs()"
    else:
        params = ", ".join(f"{k}={v}" for k, v in distribution.items() if k != "name")
        drawn = f"{distribution['name']}({params})"
    return f"{shape}, seed {seed}, inputs from {drawn}"


def _needs_gpu(used: frozenset[str]) -> str:
    gpu = sorted(used & backends.GPU_BACKENDS)
    hint = "; pass --interpret to run Triton kernels in Triton's interpreter on the CPU" if backends.TRITON in used else ""
    return (f"static checks passed and it loaded, but its {', '.join(gpu)} kernels need a CUDA GPU, "
            f"and none is usable here{hint}")


def _pass_reason(verdict: Verdict) -> str:
    parts = [f"{verdict.time.median_ms:.4g} ms"]
    parts += [f"{s:.2f}x vs {name}" for name, s in verdict.speedup.items()]
    if verdict.speed_of_light:
        parts.append(f"{100 * verdict.speed_of_light['fraction']:.0f}% of speed of light")
    return "correct; " + ", ".join(parts)
