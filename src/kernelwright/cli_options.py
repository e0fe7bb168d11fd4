"""The run settings that `optimize` and `bench` both take, declared once so they mean the same in both.

Each is an annotated type for a command's parameter; `apply_flags` puts the
values given on the command line over a Config (from --config or defaults).
The LLM flags (--model, --base-url, --provider) are optional keywords of
`apply_flags`: a command that declares them passes them on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kernelwright.config import Config, ConfigError
from kernelwright.search import STRATEGIES, StrategyError

DEFAULT_DB = Path("kernelwright.db")

GeneratorFlag = Annotated[Optional[str], typer.Option(
    "--generator", "-g", help="NAME or NAME:ARG: expert (default; expert:cpu or expert:triton), llm (llm:PIPELINE; "
                              "with --model), scripted:FOLDER.")]
ModelFlag = Annotated[Optional[str], typer.Option(
    "--model", help="The model of --generator llm, as its server names it (sets \\[llm] model).")]
BaseUrlFlag = Annotated[Optional[str], typer.Option(
    "--base-url", help="The server of --generator llm: any OpenAI-compatible URL (vLLM, SGLang, Ollama, llama.cpp), "
                       "e.g. http://localhost:8000/v1 (sets \\[llm] base_url).")]
ProviderFlag = Annotated[Optional[str], typer.Option(
    "--provider", help="openai (the default with --model or --base-url), anthropic, litellm, exchange[:FOLDER] or "
                       "scripted:FOLDER (sets \\[llm] provider).")]
StrategyFlag = Annotated[Optional[str], typer.Option(
    "--strategy", "-s", help=f"One of: {', '.join(STRATEGIES)} (default refine).")]
BudgetFlag = Annotated[Optional[int], typer.Option(
    "--budget", "-n", min=1, help="Candidates to evaluate (default 20).")]
MaxTokensFlag = Annotated[Optional[int], typer.Option(
    "--max-tokens", min=1, help="Stop after this many LLM tokens.")]
MaxCostFlag = Annotated[Optional[float], typer.Option(
    "--max-cost", min=0, help="Stop after this many dollars of LLM calls.")]
TimeLimitFlag = Annotated[Optional[str], typer.Option(
    "--time-limit", help="Stop after this wall time: 90, 90s, 20m, 2h.")]
TargetSolFlag = Annotated[Optional[float], typer.Option(
    "--target-sol", min=0, help="Stop when the best reaches this fraction of the speed of light (default 0.9).")]
PlateauFlag = Annotated[Optional[int], typer.Option(
    "--plateau", min=1, help="Stop after this many candidates without a 1% gain.")]
SeedFlag = Annotated[Optional[int], typer.Option("--seed", help="Seed of the strategy's choices (default 0).")]
DeviceFlag = Annotated[Optional[str], typer.Option(
    "--device", help="cuda or cpu (default: the GPUs when there are any).")]
InterpretFlag = Annotated[bool, typer.Option(
    "--interpret", help="Without a GPU, run Triton kernels in Triton's interpreter.")]
ConfigFlag = Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings; flags override it.")]
DbFlag = Annotated[Path, typer.Option("--db", help="SQLite store of runs, candidates and evaluations.")]


# The [llm] settings a flag may set. A command that does not declare these flags passes none of them.
LLM_FLAGS = ("model", "base_url", "provider")
_FLAG_NAMES = {"model": "--model", "base_url": "--base-url", "provider": "--provider"}
# Generators known to ask no LLM: an LLM flag given with one of them would be silently ignored.
_NO_LLM = ("expert", "scripted")


def apply_flags(config: Config, **flags: object) -> None:
    """Flags given on the command line override the config file."""
    simple = {"generator": config, "strategy": config, "seed": config}
    for name, target in simple.items():
        if flags[name] is not None:
            setattr(target, name, flags[name])
    if flags["budget"] is not None:
        config.budget.candidates = flags["budget"]
    if flags["max_tokens"] is not None:
        config.budget.max_tokens = flags["max_tokens"]
    if flags["max_cost"] is not None:
        config.budget.max_cost = flags["max_cost"]
    if flags["time_limit"] is not None:
        config.budget.time_limit_s = parse_duration(str(flags["time_limit"]))
    if flags["target_sol"] is not None:
        config.stop.target_sol = flags["target_sol"]
    if flags["plateau"] is not None:
        config.stop.plateau = flags["plateau"]
    if flags["device"] is not None:
        if flags["device"] not in ("cuda", "cpu"):
            raise ConfigError(f"--device must be cuda or cpu, got {flags['device']!r}")
        config.eval.device = flags["device"]
    if flags["interpret"]:
        config.eval.interpret_triton = True
    if config.strategy not in STRATEGIES:
        raise StrategyError(f"unknown strategy {config.strategy!r}; one of: {', '.join(STRATEGIES)}")
    _apply_llm_flags(config, {name: flags.get(name) for name in LLM_FLAGS})


def _apply_llm_flags(config: Config, flags: dict[str, object]) -> None:
    """Put the LLM flags over [llm], then check that `--generator llm` has an LLM to ask, so that a
    missing model is one line before the run starts, not an error after the evaluators are up."""
    given = [name for name, value in flags.items() if value is not None]
    for name in given:
        setattr(config.llm, name, flags[name])
    generator = (config.generator or "expert").partition(":")[0]  # None: the default generator, expert
    if given and generator in _NO_LLM:
        verb = "chooses" if len(given) == 1 else "choose"
        raise ConfigError(f"{' and '.join(_FLAG_NAMES[n] for n in given)} {verb} the LLM of --generator llm, "
                          f"but the generator is {generator}; add --generator llm")
    if generator == "llm":
        from kernelwright.llm import ProviderError, check_settings

        try:
            check_settings(config.llm)
        except ProviderError as e:
            raise ConfigError(f"--generator llm: {e}") from None


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "20m" or "2h"."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise ConfigError(f"--time-limit: expected seconds or a number with s, m or h, got {text!r}") from None
    if seconds <= 0:
        raise ConfigError(f"--time-limit must be positive, got {text!r}")
    return seconds
