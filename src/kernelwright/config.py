"""Every setting of an optimization run, in dataclasses, loadable from one TOML file.

    generator = "scripted:examples/candidates"
    strategy = "evolve"
    seed = 0
    [budget]
    candidates = 40
    time_limit_s = 3600
    [stop]
    target_sol = 0.9
    [eval]
    seeds = 5
    [strategies.evolve]
    islands = 3
    [llm]
    model = "gpt-4o"
    [agents]
    pipeline = "planner+coder+debugger"

Command-line flags override the file; a key the dataclasses do not know is an
error naming the file and the key, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kernelwright.evaluate.options import EvalOptions


class ConfigError(Exception):
    """A setting that cannot be used; one line naming where it came from."""


@dataclass
class Budget:
    candidates: int = 20  # candidates evaluated (a duplicate source does not count)
    max_tokens: int | None = None  # LLM tokens, prompt and reply
    max_cost: float | None = None  # dollars of LLM calls
    time_limit_s: float | None = None  # wall time over all sessions of the run


@dataclass
class Stopping:
    target_sol: float | None = 0.9  # stop once the best runs at this fraction of the speed of light
    plateau: int | None = None  # stop after this many evaluated candidates in a row without a gain
    min_gain: float = 0.01  # a gain is a time at least this fraction below the best's
    max_failed_rounds: int = 3  # stop after this many rounds in a row that brought nothing new


@dataclass
class EvalSettings:
    device: str | None = None  # "cuda" or "cpu"; None: the GPUs when there are any
    interpret_triton: bool = False
    seeds: int = 5
    baselines: tuple[str, ...] = ("eager", "compile")
    allow_ops: tuple[str, ...] = ()
    profile: bool = False
    step_timeout: float = 120.0
    compile_timeout: float = 300.0
    gpus: tuple[int, ...] | None = None  # which GPUs evaluate (one evaluator each); None: all
    # Candidate workers started ahead of need, per evaluator. None: 1 on the CPU (a
    # 2-core machine cannot spare more), 3 per GPU (each takes ~6 s to warm on an
    # H100 machine; docs/benchmarks.md measured 4 to remove waiting entirely).
    spare_workers: int | None = None
    prebuild_workers: int = 2  # CPU processes compiling CUDA/C++ sources ahead of evaluation

    def options(self, device: str) -> EvalOptions:
        spares = self.spare_workers if self.spare_workers is not None else (1 if device == "cpu" else 3)
        return EvalOptions(device=self.device, interpret_triton=self.interpret_triton, seeds=self.seeds,
                           baselines=tuple(self.baselines), allow_ops=tuple(self.allow_ops), profile=self.profile,
                           step_timeout=self.step_timeout, compile_timeout=self.compile_timeout,
                           spare_workers=spares)


@dataclass
class LLMSettings:
    """The [llm] table: which model answers the LLM generator's roles, and how calls are made."""

    # openai | anthropic | litellm | exchange[:FOLDER] | scripted:FOLDER; None: openai once model or base_url is set
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None  # an OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp) or another endpoint
    api_key_env: str | None = None  # the environment variable holding the key; None: the provider's usual one
    temperature: float | None = None  # None: the server's default
    max_tokens: int | None = None  # reply tokens
    reasoning_effort: str | None = None  # low | medium | high, for models that reason
    timeout_s: float = 300.0  # one attempt (the exchange provider: the wait for a reply file)
    max_retries: int = 4  # after 429, 5xx, lost connections and timeouts, with backoff
    concurrency: int = 4  # LLM calls in flight at once
    cache: str = "deterministic"  # off | deterministic (temperature 0 only) | all
    prices: dict[str, Any] = field(default_factory=dict)  # [llm.prices] MODEL = [input, output], USD per 1M tokens


@dataclass
class AgentSettings:
    """The [agents] table: which roles the LLM generator runs, and what its prompts may hold."""

    # coder | planner+coder+debugger | planner+coder+debugger+judge; None: planner+coder+debugger,
    # with the judge when [eval] profile is on (it reads profiles). `--generator llm:PIPELINE` sets it too.
    pipeline: str | None = None
    backend: str | None = None  # triton | cuda | cuda_inline | cpu; None: cpu when judged on the CPU, else triton
    max_debug_attempts: int = 3  # debugger rounds on one failing lineage before the coder rewrites it
    history_tokens: int = 800  # the run's earlier attempts, one line each, in a prompt
    knowledge_tokens: int = 1500  # technique and pattern notes in a coder's prompt


@dataclass
class Config:
    generator: str | None = None  # NAME or NAME:ARGUMENT; None: the default generator
    strategy: str = "refine"
    seed: int = 0
    concurrency: int = 4  # generator calls in flight at once
    budget: Budget = field(default_factory=Budget)
    stop: Stopping = field(default_factory=Stopping)
    eval: EvalSettings = field(default_factory=EvalSettings)
    strategy_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # [strategies.NAME] tables
    llm: LLMSettings = field(default_factory=LLMSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def run_key(self, task_id: str) -> str:
        """What makes two commands the same run: the task and every setting but the open-ended limits."""
        settings = self.to_dict()
        for limit in ("max_tokens", "max_cost", "time_limit_s"):
            settings["budget"].pop(limit)
        # How LLM calls are made (key, retries, limits, cache, prices) does not change what is asked.
        llm = settings.pop("llm")
        for knob in ("api_key_env", "timeout_s", "max_retries", "concurrency", "cache", "prices"):
            llm.pop(knob)
        if any(value is not None for value in llm.values()):  # runs made without [llm] keep their keys
            settings["llm"] = llm
        if settings["agents"] == dataclasses.asdict(AgentSettings()):  # runs made without [agents] keep their keys
            settings.pop("agents")
        blob = json.dumps({"task": task_id, **settings}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


T = TypeVar("T")


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    if "strategies" in data:  # [strategies.NAME] tables in the file
        data["strategy_params"] = data.pop("strategies")
    return from_dict(Config, data, str(path))


def from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from plain data, checking every key and type; nested dataclasses recurse."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {', '.join(fields)})")
        values[key] = _coerce(hints[key], value, f"{where}: {key}")
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _coerce(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin is dict or hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
