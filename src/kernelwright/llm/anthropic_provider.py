"""Anthropic's Messages API through the `anthropic` SDK (the optional extra `kernelwright[anthropic]`),
imported only when this provider is chosen."""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit

from kernelwright.llm.provider import (
    ProviderError,
    Reply,
    Request,
    TransientError,
    api_key,
    error_detail,
    retry_after_seconds,
    status_error,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
KEY_ENV = "ANTHROPIC_API_KEY"
_HOSTED = "api.anthropic.com"
# The Messages API requires a reply limit; this one fits a whole kernel file with room to spare.
DEFAULT_MAX_TOKENS = 8192


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, base_url: str | None = None, api_key_env: str | None = None, timeout_s: float = 300.0) -> None:
        try:
            import anthropic
        except ImportError:
            raise ProviderError("the anthropic provider needs the anthropic SDK: "
                                "pip install 'kernelwright[anthropic]'") from None
        self._sdk = anthropic
        self.base_url = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.key_env = api_key_env or KEY_ENV
        self.timeout_s = timeout_s
        key = api_key(self.name, api_key_env, KEY_ENV, self.base_url, urlsplit(self.base_url).hostname == _HOSTED)
        # max_retries=0: the Client retries, so every attempt is counted and backed off in one place.
        self._client = anthropic.Anthropic(api_key=key, base_url=self.base_url, timeout=timeout_s, max_retries=0)

    def complete(self, request: Request) -> Reply:
        sdk = self._sdk
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"]
        params: dict[str, Any] = {}
        if system:
            params["system"] = system
        # Sent as raw body fields: SDK releases differ in which of these they take as arguments.
        body: dict[str, Any] = {}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.reasoning_effort is not None:
            body["output_config"] = {"effort": request.reasoning_effort}
        if body:
            params["extra_body"] = body
        start = time.monotonic()
        try:
            response = self._client.messages.create(
                model=request.model, messages=messages,
                max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS, **params,
            )
        except sdk.APITimeoutError:
            raise TransientError(f"anthropic server at {self.base_url}: no reply within {self.timeout_s:g} s") from None
        except sdk.APIConnectionError as e:
            cause = e.__cause__ or e
            raise TransientError(f"cannot reach the Anthropic server at {self.base_url} ({cause}): "
                                 "check --base-url or [llm] base_url") from None
        except sdk.APIStatusError as e:
            retry_after = retry_after_seconds(e.response.headers.get("retry-after"))
            detail = error_detail(e.body, e.message)
            raise status_error(self.name, self.base_url, e.status_code, detail, self.key_env, retry_after) from None
        except sdk.AnthropicError as e:
            raise ProviderError(f"anthropic server at {self.base_url}: {e}") from None
        seconds = time.monotonic() - start
        texts = [block.text for block in response.content if block.type == "text"]
        if not texts:
            raise ProviderError(f"anthropic server at {self.base_url}: a reply with no text "
                                f"(stop_reason {response.stop_reason}; thinking may need more max_tokens)")
        usage = response.usage
        # Prompt-cache reads and writes are input too, counted apart from `input_tokens` by this API.
        cached_input = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
        return Reply(
            text="".join(texts),
            input_tokens=usage.input_tokens + cached_input,
            output_tokens=usage.output_tokens,
            cost_usd=None,  # the API carries no price; the Client's table does
            model=response.model or request.model,
            seconds=seconds,
        )
