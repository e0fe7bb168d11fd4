"""A run: what every search strategy talks to.

A strategy decides what to ask for (`Request`s: drafts, repairs, mutations of
chosen parents) and calls `run.ask(requests)`. The run asks the generator
(several requests at once), evaluates what comes back (every GPU busy, each
source once), records everything in the store as it happens, and returns the
new nodes in request order. It also owns the budget and the stopping rules:
a strategy loops `while not run.done`.

Resuming replays the journal. Each generator call has an index; a call
that the store already holds is answered from it, and an evaluation the
store holds is never run again. Strategies are deterministic given the
verdicts they see and `run.rng`, so a resumed run asks the same calls in
the same order and reaches the same state as one never interrupted.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kernelwright.candidate import Candidate
from kernelwright.config import Config
from kernelwright.generate.base import INTENTS, Context, Generator
from kernelwright.search.node import Node
from kernelwright.store import NodeRecord, ProposalRecord, RunRecord, Store
from kernelwright.task import Task

HISTORY_LENGTH = 50  # earlier nodes summarized in a generator's context


class ResumeError(Exception):
    """The stored run cannot be continued by this command (it asked differently at some point)."""


class Evaluations(Protocol):
    """What a run needs of the evaluators (the real one is evaluate.pool.EvaluatorPool)."""

    key: str  # verdicts are reused only under the same key (device, versions, settings)

    async def evaluate(self, task: Task, candidate: Candidate) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Request:
    intent: str = "draft"
    parents: tuple[Node, ...] = ()
    technique: str | None = None
    count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The request as journaled: what a resumed run must ask again at the same index."""
        return {"intent": self.intent, "parents": [p.id for p in self.parents], "technique": self.technique,
                "count": self.count, "extra": self.extra}


class Run:
    def __init__(self, record: RunRecord, task: Task, generator: Generator, evaluations: Evaluations,
                 store: Store, config: Config, on_progress: Callable[[Run], None] | None = None) -> None:
        self.record, self.task, self.generator = record, task, generator
        self.evaluations, self.store, self.config = evaluations, store, config
        self.on_progress = on_progress or (lambda run: None)
        self.rng = random.Random(config.seed)  # the strategy's only source of chance
        self.nodes: list[Node] = []
        self.best: Node | None = None
        self.stop_reason: str | None = None
        self.counts: Counter[str] = Counter()  # verdict statuses, plus "duplicate" and "generator_error"
        self.generator_errors: list[str] = []
        self.in_flight = 0  # evaluations running now (for progress)
        self._by_id: dict[str, Node] = {}
        self._evaluating: dict[str, asyncio.Task] = {}
        self._calls = 0  # generator requests so far: the journal index of the next
        self._ordinal = 0  # candidates asked for so far
        self._since_gain = 0
        self._failed_rounds = 0
        self._session_start = time.monotonic()
        self._generation_slots: asyncio.Semaphore | None = None
        self._loop = asyncio.new_event_loop()

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def budget_left(self) -> int:
        return max(0, self.config.budget.candidates - len(self.nodes))

    @property
    def elapsed_s(self) -> float:
        return self.record.elapsed_s + time.monotonic() - self._session_start

    @property
    def done(self) -> bool:
        if self.stop_reason is None:
            self.stop_reason = self._stop_reason()
        return self.stop_reason is not None

    def finish(self, reason: str) -> None:
        """A strategy ends the run (target met, nothing left to expand)."""
        self.stop_reason = self.stop_reason or reason

    def close(self) -> None:
        """Record the time spent; cancel what an interruption left in flight (its results are not wanted)."""
        self.store.update_run(self.id, elapsed_s=self.elapsed_s)
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    # -- asking --------------------------------------------------------------------------------

    def ask(self, requests: list[Request]) -> list[list[Node]]:
        """Propose and evaluate; the new nodes per request (a duplicate source is not new)."""
        if self.done or not requests:
            return [[] for _ in requests]
        fitted = self._fit_budget(requests)
        results = self._loop.run_until_complete(self._ask(fitted))
        per_request: list[list[Node]] = []
        for request, (call, candidates, verdicts, error) in zip(fitted, results):
            if error:
                self.counts["generator_error"] += 1
                self.generator_errors.append(error)
            per_request.append([n for c, v in zip(candidates, verdicts) if (n := self._add(call, request, c, v))])
        per_request += [[] for _ in requests[len(fitted):]]
        self._failed_rounds = 0 if any(per_request) else self._failed_rounds + 1
        self.store.update_run(self.id, elapsed_s=self.elapsed_s)
        self.on_progress(self)
        return per_request

    def _fit_budget(self, requests: list[Request]) -> list[Request]:
        """The leading requests whose candidates fit in the budget (the last one cut to fit)."""
        left, fitted = self.budget_left, []
        for request in requests:
            if request.intent not in INTENTS:
                raise ValueError(f"unknown intent {request.intent!r}; one of {', '.join(INTENTS)}")
            if left <= 0:
                break
            fitted.append(replace(request, count=min(request.count, left)))
            left -= fitted[-1].count
        return fitted

    async def _ask(self, requests: list[Request]) -> list[tuple[int, list[Candidate], list[dict], str | None]]:
        if self._generation_slots is None:
            self._generation_slots = asyncio.Semaphore(max(1, self.config.concurrency))
        jobs = []
        for request in requests:  # indices are handed out in order, before anything is awaited
            context = self._context(request, self._calls, self._ordinal)
            jobs.append(self._propose_and_evaluate(self._calls, request, context))
            self._calls += 1
            self._ordinal += request.count
        return await asyncio.gather(*jobs)

    async def _propose_and_evaluate(self, call: int, request: Request,
                                    context: Context) -> tuple[int, list[Candidate], list[dict], str | None]:
        candidates, error = await self._proposal(call, request, context)
        verdicts = await asyncio.gather(*(self._verdict(c) for c in candidates))
        return call, candidates, list(verdicts), error

    async def _proposal(self, call: int, request: Request, context: Context) -> tuple[list[Candidate], str | None]:
        """The journaled proposal for this call, or a fresh one from the generator (then journaled)."""
        recorded = self.store.get_proposal(self.id, call)
        if recorded is not None:
            if recorded.request != request.describe():
                raise ResumeError(f"run {self.id} asked differently at call {call} "
                                  f"(stored {recorded.request}, now {request.describe()}); start a new run")
            return [Candidate(self.store.get_source(c["id"]), c["name"], c["metadata"])
                    for c in recorded.candidates], recorded.error
        start = time.monotonic()
        async with self._generation_slots:
            candidates, error = await self._call_generator(request, context)
        lineage = {"generator": self.generator.name, "parents": [p.id for p in request.parents],
                   "intent": request.intent, "technique": request.technique}
        candidates = [replace(c, metadata={**c.metadata, **lineage}) for c in candidates]
        for candidate in candidates:
            self.store.put_source(candidate.id, candidate.source)
        self.store.record_proposal(ProposalRecord(
            self.id, call, request.describe(),
            [{"id": c.id, "name": c.name, "metadata": c.metadata} for c in candidates],
            error, time.monotonic() - start))
        return candidates, error

    async def _call_generator(self, request: Request, context: Context) -> tuple[list[Candidate], str | None]:
        """What the generator proposed, cut to the count asked; any failure of its own becomes an error line."""
        try:
            if inspect.iscoroutinefunction(self.generator.propose):
                proposed = await self.generator.propose(self.task, context)
            else:
                proposed = await asyncio.to_thread(self.generator.propose, self.task, context)
        except Exception as e:  # noqa: BLE001  (a generator's bug is recorded, the run goes on)
            return [], f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:500]
        if not isinstance(proposed, (list, tuple)) or not all(isinstance(c, Candidate) for c in proposed):
            return [], f"the generator returned {type(proposed).__name__}, not a list of Candidate"
        return list(proposed)[:request.count], None

    async def _verdict(self, candidate: Candidate) -> dict[str, Any]:
        """Stored verdict, or one being computed now, or a new evaluation (recorded the moment it ends)."""
        if candidate.id in self._by_id:
            return self._by_id[candidate.id].verdict
        stored = self.store.get_evaluation(candidate.id, self.task.id, self.evaluations.key)
        if stored is not None:
            return stored
        if candidate.id not in self._evaluating:
            self._evaluating[candidate.id] = asyncio.ensure_future(self._evaluate(candidate))
        return await asyncio.shield(self._evaluating[candidate.id])

    async def _evaluate(self, candidate: Candidate) -> dict[str, Any]:
        self.in_flight += 1
        self.on_progress(self)
        start = time.monotonic()
        try:
            verdict = await self.evaluations.evaluate(self.task, candidate)
        finally:
            self.in_flight -= 1
            self._evaluating.pop(candidate.id, None)
        self.store.record_evaluation(candidate.id, self.task.id, self.evaluations.key, verdict,
                                     time.monotonic() - start)
        self.on_progress(self)
        return verdict

    def _context(self, request: Request, call: int, ordinal: int) -> Context:
        return Context(
            intent=request.intent, parents=tuple(p.as_parent() for p in request.parents),
            technique=request.technique, count=request.count,
            seed=random.Random(f"{self.config.seed}:{call}").getrandbits(32), ordinal=ordinal,
            budget_left=self.budget_left, best=self.best.as_parent() if self.best else None,
            history=tuple(n.summary() for n in self.nodes[-HISTORY_LENGTH:]), run_id=self.id,
            extra=dict(request.extra),
        )

    # -- recording -----------------------------------------------------------------------------

    def _add(self, call: int, request: Request, candidate: Candidate, verdict: dict[str, Any]) -> Node | None:
        if candidate.id in self._by_id:
            self.counts["duplicate"] += 1
            return None
        node = Node(len(self.nodes), candidate, verdict, tuple(p.id for p in request.parents),
                    request.intent, request.technique)
        self.store.record_node(NodeRecord(
            self.id, node.seq, node.id, call, candidate.name, list(node.parents), self.generator.name,
            node.intent, node.technique, candidate.metadata, self.evaluations.key))
        self.nodes.append(node)
        self._by_id[node.id] = node
        self.counts[node.status] += 1
        if node.beats(self.best, self.config.stop.min_gain if self.best else 0.0):
            self.best, self._since_gain = node, 0
        else:
            if node.beats(self.best):  # faster, but by less than a gain: still the best, not progress
                self.best = node
            self._since_gain += 1
        return node

    def _stop_reason(self) -> str | None:
        budget, stop = self.config.budget, self.config.stop
        if len(self.nodes) >= budget.candidates:
            return f"budget: {len(self.nodes)} candidates evaluated"
        if budget.time_limit_s is not None and self.elapsed_s >= budget.time_limit_s:
            return f"time limit: {self.elapsed_s:.0f} s of {budget.time_limit_s:g} s"
        if budget.max_tokens is not None or budget.max_cost is not None:
            usage = self.store.usage(self.id)
            if budget.max_tokens is not None and usage.tokens >= budget.max_tokens:
                return f"token budget: {usage.tokens} of {budget.max_tokens} tokens used"
            if budget.max_cost is not None and usage.cost >= budget.max_cost:
                return f"cost budget: ${usage.cost:.2f} of ${budget.max_cost:.2f} spent"
        fraction = self.best.sol_fraction if self.best else None
        if stop.target_sol is not None and fraction is not None and fraction >= stop.target_sol:
            return f"target: the best runs at {100 * fraction:.0f}% of the speed of light"
        if stop.plateau is not None and self._since_gain >= stop.plateau:
            return f"plateau: {self._since_gain} candidates without a {100 * stop.min_gain:g}% gain"
        if self._failed_rounds >= stop.max_failed_rounds:
            last = f" (last generator error: {self.generator_errors[-1]})" if self.generator_errors else ""
            return f"the generator brought nothing new in {self._failed_rounds} rounds in a row{last}"
        return None
