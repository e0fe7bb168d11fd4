"""OpenAI-compatible chat completions through the `openai` SDK: OpenAI itself, vLLM, SGLang,
Ollama, llama.cpp's server, or anything else that serves `/v1/chat/completions` at a base URL."""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

import openai

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

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"
_HOSTED = "api.openai.com"


class OpenAICompatProvider:
    name = "openai"

    def __init__(self, base_url: str | None = None, api_key_env: str | None = None, timeout_s: float = 300.0) -> None:
        # An explicit base URL wins; then the SDK's own variable, so a shell set up for the SDK works unchanged.
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.hosted = urlsplit(self.base_url).hostname == _HOSTED
        self.key_env = api_key_env or KEY_ENV
        self.timeout_s = timeout_s
        key = api_key(self.name, api_key_env, KEY_ENV, self.base_url, self.hosted)
        # max_retries=0: the Client retries, so every attempt is counted and backed off in one place.
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=timeout_s, max_retries=0)

    def complete(self, request: Request) -> Reply:
        params: dict[str, object] = {}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            # OpenAI's reasoning models reject `max_tokens`; servers such as llama.cpp know only it.
            params["max_completion_tokens" if self.hosted else "max_tokens"] = request.max_tokens
        if request.reasoning_effort is not None:
            params["reasoning_effort"] = request.reasoning_effort
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        start = time.monotonic()
        try:
            response = self._client.chat.completions.create(model=request.model, messages=messages, **params)
        except openai.APITimeoutError:
            raise TransientError(f"openai server at {self.base_url}: no reply within {self.timeout_s:g} s") from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            raise TransientError(f"cannot reach the OpenAI-compatible server at {self.base_url} ({cause}): "
                                 "is it running? check --base-url or [llm] base_url") from None
        except openai.APIStatusError as e:
            retry_after = retry_after_seconds(e.response.headers.get("retry-after"))
            detail = error_detail(e.body, e.message)
            raise status_error(self.name, self.base_url, e.status_code, detail, self.key_env, retry_after) from None
        except openai.OpenAIError as e:
            raise ProviderError(f"openai server at {self.base_url}: {e}") from None
        seconds = time.monotonic() - start
        if not response.choices:
            raise ProviderError(f"openai server at {self.base_url}: a reply with no choices (model {request.model})")
        choice = response.choices[0]
        if choice.message.content is None:
            raise ProviderError(f"openai server at {self.base_url}: a reply with no text "
                                f"(finish_reason {choice.finish_reason}; a reasoning model may need more max_tokens)")
        usage = response.usage
        return Reply(
            text=choice.message.content,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            cost_usd=None,  # the chat-completions protocol carries no price; the Client's table does
            model=response.model or request.model,
            seconds=seconds,
        )
