"""LLM providers behind one small interface, and the client that adds retries, a cache and accounting.

    from kernelwright.llm import make_client, Message, Request
    client = make_client(config.llm, store)
    reply = client.complete(Request((Message("user", "..."),), model=config.llm.model), role="coder")

Providers, chosen by `[llm] provider` (or `--model` / `--base-url`, which mean
"openai", the OpenAI-compatible protocol): `openai` (OpenAI, vLLM, SGLang,
Ollama, llama.cpp server), `anthropic` and `litellm` (optional extras, imported
only when chosen), `exchange[:FOLDER]` (a person or program answers in files),
`scripted:FOLDER` (replies from files, for tests). The one chosen is the one
used: a provider that fails is an error, never a switch to another.
"""

from __future__ import annotations

from kernelwright.config import Config, ConfigError, LLMSettings
from kernelwright.llm.client import DEFAULT_PRICES, Client, Price, Totals
from kernelwright.llm.provider import Message, Provider, ProviderError, Reply, Request, TransientError
from kernelwright.store import Store

__all__ = [
    "PROVIDERS", "Client", "LLMSettings", "Message", "Provider", "ProviderError", "Reply", "Request", "Totals",
    "TransientError", "check_settings", "make_client", "make_provider", "provider_name",
]

PROVIDERS = ("openai", "anthropic", "litellm", "exchange", "scripted")
_NEED_MODEL = ("openai", "anthropic", "litellm")


def provider_name(settings: LLMSettings) -> str:
    """The provider the settings choose (the part of `provider` before any ":ARGUMENT")."""
    if settings.provider:
        name = settings.provider.partition(":")[0]
        if name not in PROVIDERS:
            raise ProviderError(f"unknown LLM provider {name!r} in [llm] provider; known: {', '.join(PROVIDERS)}")
        return name
    if settings.model or settings.base_url:
        return "openai"
    raise ProviderError("no LLM chosen: pass --model (and --base-url for your own server) "
                        "or set [llm] provider and model in the config")


def check_settings(settings: LLMSettings) -> str:
    """The provider the settings choose, once they hold all it needs; ProviderError names what to set.
    Nothing is imported or connected: the command line checks this before a run starts."""
    name = provider_name(settings)
    if name in _NEED_MODEL and not settings.model:
        raise ProviderError(f"the {name} provider needs a model: pass --model or set [llm] model")
    if name == "scripted" and not (settings.provider or "").partition(":")[2]:
        raise ProviderError("the scripted provider needs a folder of replies: --provider scripted:FOLDER "
                            "or [llm] provider = \"scripted:FOLDER\"")
    return name


def make_provider(config: LLMSettings | Config) -> Provider:
    """The provider `config` (the [llm] settings, or a whole Config) names; ProviderError says what is missing."""
    settings = config.llm if isinstance(config, Config) else config
    name = check_settings(settings)
    argument = (settings.provider or "").partition(":")[2] or None
    if name == "openai":
        from kernelwright.llm.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(settings.base_url, settings.api_key_env, settings.timeout_s)
    if name == "anthropic":
        from kernelwright.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider(settings.base_url, settings.api_key_env, settings.timeout_s)
    if name == "litellm":
        from kernelwright.llm.litellm_provider import LiteLLMProvider

        return LiteLLMProvider(settings.base_url, settings.api_key_env, settings.timeout_s)
    if name == "exchange":
        from kernelwright.llm.exchange import DEFAULT_FOLDER, ExchangeProvider

        return ExchangeProvider(argument or DEFAULT_FOLDER, settings.timeout_s)
    from kernelwright.llm.scripted import ScriptedProvider

    return ScriptedProvider(argument)


def make_client(config: LLMSettings | Config, store: Store | None = None) -> Client:
    """A Client around `make_provider(config)` with the settings' retries, limits, cache and prices;
    each call is recorded in `store` when one is given."""
    settings = config.llm if isinstance(config, Config) else config
    return Client(make_provider(settings), max_retries=settings.max_retries, concurrency=settings.concurrency,
                  cache=settings.cache, prices={**DEFAULT_PRICES, **prices(settings)}, store=store)


def prices(settings: LLMSettings) -> dict[str, Price]:
    """The [llm.prices] table checked: each MODEL = [input, output], USD per million tokens."""
    checked: dict[str, Price] = {}
    for model, value in settings.prices.items():
        numbers = value if isinstance(value, (list, tuple)) else ()
        if len(numbers) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                        for v in numbers):
            raise ConfigError(f"[llm.prices] {model}: expected [input, output] USD per million tokens, got {value!r}")
        checked[model] = (float(numbers[0]), float(numbers[1]))
    return checked
