"""The one interface every LLM provider implements: `complete(Request) -> Reply`.

A provider makes exactly one attempt per call and says what went wrong in a
ProviderError; retries, caching, concurrency limits and accounting live in
`kernelwright.llm.client.Client`, which wraps any provider. A provider whose
failure may pass on its own (rate limit, server error, lost connection,
timeout) raises TransientError, the only error the client retries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str  # one of ROLES
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"message role {self.role!r} is not one of {', '.join(ROLES)}")


@dataclass(frozen=True)
class Request:
    messages: tuple[Message, ...]
    model: str
    temperature: float | None = None  # None: the server's default
    max_tokens: int | None = None  # reply tokens; None: the server's default
    reasoning_effort: str | None = None  # "low" | "medium" | "high" where the model reasons; None: not sent


@dataclass(frozen=True)
class Reply:
    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: unknown (the client prices it from its table when it can)
    model: str  # the model that answered, as the server names it
    cached: bool = False  # served from the client's response cache: no tokens or money spent
    seconds: float = 0.0  # wall time of the call


@runtime_checkable
class Provider(Protocol):
    name: str

    def complete(self, request: Request) -> Reply:
        """One attempt at `request`; ProviderError (TransientError when worth retrying) on failure."""
        ...


class ProviderError(Exception):
    """A call or a provider that cannot work; one line naming what failed or what to set."""


class TransientError(ProviderError):
    """A failure that may pass if the same request is sent again (429, 5xx, connection, timeout)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked to wait, when it said


def transcript(messages: tuple[Message, ...]) -> str:
    """The messages as one markdown text: what is stored as a call's prompt and shown to a person."""
    return "\n\n".join(f"## {m.role}\n\n{m.content}" for m in messages)


def status_error(provider: str, url: str, status: int, detail: str, key_env: str,
                 retry_after: float | None = None) -> ProviderError:
    """The error for an HTTP error status from a provider's server: transient for 408, 409, 429 and 5xx."""
    detail = " ".join(detail.split())[:300]  # one line, and short: servers may send whole HTML pages
    where = f"{provider} server at {url}"
    if status in (401, 403):
        return ProviderError(f"{where} rejected the API key ({status}): set {key_env} to a valid key ({detail})")
    if status == 404:
        return ProviderError(f"{where}: not found (404): check the model name and base URL ({detail})")
    if status in (408, 409, 429) or status >= 500:
        return TransientError(f"{where} answered {status}: {detail}", retry_after)
    return ProviderError(f"{where} refused the request ({status}): {detail}")


def retry_after_seconds(value: str | None) -> float | None:
    """The Retry-After header's seconds (the date form is rare from LLM servers and is ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def api_key(provider: str, key_env: str | None, default_env: str, base_url: str, hosted: bool) -> str:
    """The API key from the environment: `key_env` when the config names one, else `default_env`.

    A hosted API (`hosted`: api.openai.com, api.anthropic.com) always needs one. Other servers
    (vLLM, SGLang, Ollama, llama.cpp, on this machine or a cluster node) often run without
    keys, so they get a placeholder, and if such a server does want a key its 401 names the
    variable to set.
    """
    name = key_env or default_env
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if key_env:
        raise ProviderError(f"{provider}: [llm] api_key_env names {name}, which is not set in the environment")
    if hosted:
        raise ProviderError(f"{provider}: no API key for {base_url}: set {name} "
                            "(or [llm] api_key_env to the variable that holds it)")
    return "no-key"  # the SDKs refuse an empty key; keyless servers ignore this one


def error_detail(body: object, fallback: str) -> str:
    """The server's own error message from a JSON error body ({"error": {"message": ...}} in both
    OpenAI's and Anthropic's protocols, or the inner object alone), else `fallback`."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return fallback
