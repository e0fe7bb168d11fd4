"""The LLM generator: roles (planner, coder, debugger, judge) around one LLM client.

    --generator llm                  planner + coder + debugger (+ judge when [eval] profile is on)
    --generator llm:coder            a single coder, for every intent
    --generator llm:planner+coder+debugger+judge

What each intent runs, in the multi-role pipelines:

    draft      coder (the strategy's technique, if any, is its plan)
    improve /  [judge: the parent's profile -> bottleneck and fix] -> planner
    mutate     (unless the strategy named a technique) -> coder, editing the parent
    repair     debugger, editing the failed parent; after `max_debug_attempts`
               debugger rounds on one lineage, the coder rewrites it instead
    crossover  coder with both parents

A reply that cannot be read (no code, broken edit blocks, SEARCH text the
parent lacks even ignoring whitespace) is sent back once with the reason; a
second bad reply from the coder or debugger ends the proposal with that reason
as the generator's error, one from the planner or judge leaves the coder
without its advice.

Each candidate's metadata keeps what made it: every call's tokens, cost and
seconds per role (`llm`), the prompts and replies (`transcript`), the plan, the
judge's finding and how the reply was read. The client records the calls in
the store too, which is what token and cost budgets count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, TypeVar

from kernelwright import backends, environment
from kernelwright.candidate import Candidate
from kernelwright.config import AgentSettings, Config, ConfigError
from kernelwright.generate.base import Context, GeneratorError, Parent
from kernelwright.llm import knowledge, make_client, provider_name, roles
from kernelwright.llm.client import Client
from kernelwright.llm.feedback import hardware, history, rules
from kernelwright.llm.provider import Message, ProviderError, Request
from kernelwright.llm.replies import ParsedReply, ReplyError, parse_reply
from kernelwright.store import Store
from kernelwright.task import Task

BACKENDS = (backends.TRITON, backends.CUDA_NVRTC, backends.CUDA_INLINE, backends.CPU)
T = TypeVar("T")


def pipeline_roles(pipeline: str) -> tuple[str, ...]:
    """The roles a pipeline names ("planner+coder+debugger"); the coder is required."""
    names = tuple(part.strip() for part in pipeline.split("+") if part.strip())
    unknown = [n for n in names if n not in roles.ROLES]
    if unknown or "coder" not in names:
        raise GeneratorError(f"llm pipeline {pipeline!r}: roles are {', '.join(roles.ROLES)} joined by '+', "
                             "and the coder is needed (say coder, planner+coder+debugger, "
                             "planner+coder+debugger+judge)")
    return names


@dataclass
class _Session:
    """The calls made for one candidate: usage per call, the transcript, replies that could not be read."""

    usage: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0


class LLMGenerator:
    name = "llm"

    def __init__(self, client: Client, model: str, settings: AgentSettings | None = None, *, device: str = "cpu",
                 profile: bool = False, temperature: float | None = None, max_tokens: int | None = None,
                 reasoning_effort: str | None = None) -> None:
        self.client = client
        self.model = model
        self.settings = settings or AgentSettings()
        self.pipeline = self.settings.pipeline or ("planner+coder+debugger" + ("+judge" if profile else ""))
        self.roles = pipeline_roles(self.pipeline)
        self.backend = self.settings.backend or (backends.CPU if device == "cpu" else backends.TRITON)
        if self.backend not in BACKENDS:
            raise GeneratorError(f"[agents] backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        self.device = device
        self.request_options = {"temperature": temperature, "max_tokens": max_tokens,
                                "reasoning_effort": reasoning_effort}

    @classmethod
    def from_config(cls, config: Config, store: Store | None = None, pipeline: str | None = None) -> LLMGenerator:
        """The generator a run's config describes: its [llm] client (calls recorded in `store`) and [agents]."""
        try:
            client = make_client(config, store)
            model = config.llm.model or provider_name(config.llm)
        except (ProviderError, ConfigError) as e:
            raise GeneratorError(f"llm generator: {e}") from None
        settings = replace(config.agents, pipeline=pipeline) if pipeline else config.agents
        return cls(client, model, settings, device=config.eval.device or environment.default_device(),
                   profile=config.eval.profile, temperature=config.llm.temperature,
                   max_tokens=config.llm.max_tokens, reasoning_effort=config.llm.reasoning_effort)

    def propose(self, task: Task, context: Context) -> list[Candidate]:
        candidates: list[Candidate] = []
        error: Exception | None = None
        for index in range(context.count):
            try:
                candidates.append(self._propose_one(task, context, context.ordinal + index))
            except (ReplyError, ProviderError) as e:  # one failed proposal; the others may still come
                error = e
        if not candidates and error is not None:
            raise GeneratorError(f"{type(error).__name__}: {error}")
        return candidates

    # -- one candidate -------------------------------------------------------------------------

    def _propose_one(self, task: Task, context: Context, ordinal: int) -> Candidate:
        session = _Session()
        parents = context.parents
        first = parents[0] if parents else None
        base = self._inputs(task, context)
        plan = roles.Plan(context.technique, "chosen by the search strategy") if context.technique else None
        finding: roles.Finding | None = None
        rewrite = False

        if context.intent == "repair" and first is not None and not first.passed:
            attempt = int(first.candidate.metadata.get("debug_attempt", 0)) + 1
            if "debugger" in self.roles and attempt <= self.settings.max_debug_attempts:
                inputs = {**base, "parents": [roles.parent_view(first, "the failing kernel")], "attempt": attempt,
                          "max_attempts": self.settings.max_debug_attempts, "editable": "the failing kernel"}
                parsed = self._ask(session, context, "debugger", inputs, _code_parser(first))
                return self._candidate(parsed, context, ordinal, session, {"debug_attempt": attempt})
            rewrite = True  # the debugger's rounds on this lineage are spent (or it is not in the pipeline)

        if context.intent in ("improve", "mutate", "repair") and first is not None and first.passed:
            parent_inputs = {**base, "parents": [roles.parent_view(first, "the parent kernel")]}
            if "judge" in self.roles and parent_inputs["parents"][0]["profile"]:
                finding = self._advice(session, context, "judge", parent_inputs, roles.parse_finding)
            if plan is None and "planner" in self.roles:
                plan = self._advice(session, context, "planner", {**parent_inputs, "finding": finding},
                                    roles.parse_plan)

        labels = ("parent A", "parent B") if context.intent == "crossover" else ("the parent kernel",)
        shown = [roles.parent_view(p, label) for p, label in zip(parents, labels)]
        editable = shown[0]["label"] if len(shown) == 1 else None  # edits need one file to apply to
        notes = knowledge.select(knowledge.task_patterns(task), plan.technique if plan else None,
                                 finding.bottleneck if finding else None, self.backend,
                                 self.settings.knowledge_tokens)
        inputs = {**base, "parents": shown, "plan": plan, "finding": finding, "knowledge": notes,
                  "editable": editable, "rewrite": rewrite}
        parsed = self._ask(session, context, "coder", inputs, _code_parser(first if editable else None))
        meta: dict[str, Any] = {"rewrite": True} if rewrite else {}
        if plan:
            meta["plan"] = plan.to_dict()
        if finding:
            meta["finding"] = finding.to_dict()
        return self._candidate(parsed, context, ordinal, session, meta)

    def _inputs(self, task: Task, context: Context) -> dict[str, Any]:
        """What every role's prompt shows: the task, the backend and its rules, the hardware, the history."""
        verdicts = [p.verdict for p in context.parents] + ([context.best.verdict] if context.best else [])
        measured = next((v for v in verdicts if v.get("environment")), None)
        return {
            "task": roles.task_view(task, verdicts),
            "backend": self.backend,
            "rules": rules(self.backend),
            "hardware": hardware(measured, self.device),
            "history": history(context.history, self.settings.history_tokens),
            "techniques": roles.TECHNIQUES,
            "intent": context.intent,
            "parents": [],
            "plan": None,
            "finding": None,
            "knowledge": [],
            "editable": None,
            "rewrite": False,
        }

    def _advice(self, session: _Session, context: Context, role: str, inputs: dict[str, Any],
                parse: Callable[[str], T]) -> T | None:
        """A planner's or judge's answer, or None when it could not be read twice: the coder can work
        without advice, so a muddled adviser costs its calls, not the candidate."""
        try:
            return self._ask(session, context, role, inputs, parse)
        except ReplyError:
            return None

    def _ask(self, session: _Session, context: Context, role: str, inputs: dict[str, Any],
             parse: Callable[[str], T]) -> T:
        """One role's answer: a call, and when its reply cannot be read, one more call that says why."""
        messages = roles.messages(role, inputs)
        retried = False
        while True:
            request = Request(messages, self.model, **self.request_options)
            reply = self.client.complete(request, role=role, run_id=context.run_id or None)
            session.usage.append({"role": role, "model": reply.model, "input_tokens": reply.input_tokens,
                                  "output_tokens": reply.output_tokens, "cost_usd": reply.cost_usd,
                                  "seconds": round(reply.seconds, 3), "cached": reply.cached})
            entry = {"role": role, "messages": [{"role": m.role, "content": m.content} for m in messages],
                     "reply": reply.text, "error": None}
            session.transcript.append(entry)
            try:
                return parse(reply.text)
            except ReplyError as e:
                entry["error"] = str(e)
                session.malformed += 1
                if retried:
                    raise
                retried = True
                messages = (*messages, Message("assistant", reply.text),
                            Message("user", f"Your reply could not be used: {e}"))

    def _candidate(self, parsed: ParsedReply, context: Context, ordinal: int, session: _Session,
                   meta: dict[str, Any]) -> Candidate:
        technique = (meta.get("plan") or {}).get("technique")
        name = f"llm-{ordinal:03d}-{context.intent}" + (f"-{_slug(technique)}" if technique else "")
        metadata = {
            **meta,
            "roles": [entry["role"] for entry in session.transcript if entry["error"] is None],
            "backend": self.backend,
            "pipeline": self.pipeline,
            "reply": {"form": parsed.form, "notes": list(parsed.notes), "malformed": session.malformed},
            "llm": session.usage,
            "transcript": session.transcript,
        }
        return Candidate(parsed.source, name, metadata)


def from_spec(argument: str | None, *, config: Config | None = None, store: Store | None = None) -> LLMGenerator:
    """`--generator llm[:PIPELINE]`: the generator of the run's config ([llm], [agents], [eval])."""
    return LLMGenerator.from_config(config or Config(), store, pipeline=argument)


def _code_parser(parent: Parent | None) -> Callable[[str], ParsedReply]:
    source = parent.candidate.source if parent is not None else None
    return lambda text: parse_reply(text, source)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")[:24]
