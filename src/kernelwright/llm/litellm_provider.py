"""Any model LiteLLM reaches ("provider/model" names), through the optional extra
`kernelwright[litellm]`, imported only when this provider is chosen.

The extra pins LiteLLM below 1.82.7: releases 1.82.7 and 1.82.8 were compromised.
"""

from __future__ import annotations

import os
import time
from typing import Any

from kernelwright.llm.provider import (
    ProviderError,
    Reply,
    Request,
    TransientError,
    retry_after_seconds,
    status_error,
)


class LiteLLMProvider:
    name = "litellm"

    def __init__(self, base_url: str | None = None, api_key_env: str | None = None, timeout_s: float = 300.0) -> None:
        # Prices from the copy LiteLLM ships, not a download at import: no network needed, same numbers each run.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError:
            raise ProviderError("the litellm provider needs LiteLLM: pip install 'kernelwright[litellm]'") from None
        litellm.suppress_debug_info = True  # else every error also prints a help banner to stdout
        self._litellm = litellm
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._key: str | None = None
        if api_key_env:
            self._key = os.environ.get(api_key_env, "").strip() or None
            if self._key is None:
                raise ProviderError(f"litellm: [llm] api_key_env names {api_key_env}, which is not set")
        # Without a named variable LiteLLM reads each model's own (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).
        self.key_env = api_key_env or "the API key variable LiteLLM reads for this model"

    def complete(self, request: Request) -> Reply:
        litellm = self._litellm
        params: dict[str, Any] = {}
        for name in ("temperature", "max_tokens", "reasoning_effort"):
            if getattr(request, name) is not None:
                params[name] = getattr(request, name)
        if self.base_url:
            params["api_base"] = self.base_url
        if self._key:
            params["api_key"] = self._key
        where = self.base_url or request.model
        start = time.monotonic()
        try:
            response = litellm.completion(
                model=request.model, messages=[{"role": m.role, "content": m.content} for m in request.messages],
                timeout=self.timeout_s, num_retries=0, **params,  # num_retries=0: the Client retries
            )
        except litellm.Timeout:
            raise TransientError(f"litellm ({where}): no reply within {self.timeout_s:g} s") from None
        except litellm.APIConnectionError as e:
            raise TransientError(f"litellm: cannot reach {where} ({_one_line(e)})") from None
        except Exception as e:  # noqa: BLE001  (LiteLLM raises many types, each carrying the HTTP status)
            status = getattr(e, "status_code", None)
            if not isinstance(status, int):
                raise ProviderError(f"litellm ({where}): {_one_line(e)}") from None
            headers = getattr(getattr(e, "response", None), "headers", None) or {}
            raise status_error(self.name, where, status, _one_line(e), self.key_env,
                               retry_after_seconds(headers.get("retry-after"))) from None
        seconds = time.monotonic() - start
        choice = response.choices[0]
        if choice.message.content is None:
            raise ProviderError(f"litellm ({where}): a reply with no text (finish_reason {choice.finish_reason})")
        usage = getattr(response, "usage", None)
        return Reply(
            text=choice.message.content,
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost_usd=self._cost(response),
            model=response.model or request.model,
            seconds=seconds,
        )

    def _cost(self, response: Any) -> float | None:
        """LiteLLM's own price of the call; None for a model its table does not know."""
        try:
            return float(self._litellm.completion_cost(completion_response=response))
        except Exception:  # noqa: BLE001  (unknown models raise; the Client's table may still know them)
            return None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]
