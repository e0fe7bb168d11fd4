"""The client every caller uses: any provider, plus what a run needs around each call.

- retries of transient failures (429, 5xx, lost connections, timeouts) with
  exponential backoff, jittered and capped, honouring Retry-After; the SDKs'
  own retries are off (max_retries=0 in each provider), so attempts are
  counted here and nowhere else;
- a concurrency limit: at most `concurrency` calls in flight, retries included;
- a response cache on disk keyed by the sha256 of the whole request (and the
  provider and server it goes to): requests at temperature 0 only, all, or none;
- accounting: tokens, dollars (the provider's price, else the table below),
  seconds, per role and in total, and each call (or failure) in the store.

The time limit of one attempt is the provider's (`timeout_s` when it is made):
it ends the request on the wire, which a limit kept here could not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kernelwright import paths
from kernelwright.llm.provider import Provider, ProviderError, Reply, Request, TransientError, transcript
from kernelwright.store import LLMCall, Store

CACHE_MODES = ("off", "deterministic", "all")  # deterministic: requests at temperature 0 only

Price = tuple[float, float]  # USD per million tokens: (input, output)

# List prices of a few hosted models, USD per million tokens (input, output), as published in 2025.
# Edit or extend them in the config's [llm.prices] table; a model not listed has an unknown cost (None).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
}

# A release date or "latest" after a model's name names the same model at the same price.
_VERSION_SUFFIX = re.compile(r"-(\d{4}-?\d{2}-?\d{2}|latest)$")


def price_of(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of `model`: listed as it is, or without a routing prefix ("openai/") or a date suffix."""
    name = model.rsplit("/", 1)[-1]
    for candidate in (model, name, _VERSION_SUFFIX.sub("", name)):
        if candidate in prices:
            return prices[candidate]
    return None


def cost_of(model: str, input_tokens: int, output_tokens: int, prices: Mapping[str, Price]) -> float | None:
    price = price_of(model, prices)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


@dataclass
class Totals:
    calls: int = 0  # calls answered, from the cache or not
    cached: int = 0  # of which served from the cache
    failed: int = 0  # calls that ended in an error
    attempts: int = 0  # requests sent to the provider, retries included
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # of the calls with a known price
    unpriced: int = 0  # answered calls whose price is unknown (not in cost_usd)
    seconds: float = 0.0


class Client:
    def __init__(self, provider: Provider, *, max_retries: int = 4, backoff_s: float = 1.0,
                 backoff_cap_s: float = 60.0, concurrency: int = 4, cache: str = "deterministic",
                 cache_dir: Path | None = None, prices: Mapping[str, Price] | None = None,
                 store: Store | None = None) -> None:
        if cache not in CACHE_MODES:
            raise ProviderError(f"[llm] cache must be one of {', '.join(CACHE_MODES)}, not {cache!r}")
        if concurrency < 1:
            raise ProviderError(f"[llm] concurrency must be at least 1, not {concurrency}")
        self.provider = provider
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.cache = cache
        self.cache_dir = cache_dir if cache_dir is not None or cache == "off" else paths.cache_dir("llm")
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.store = store
        # The same model name on two servers may be two models: the cache keeps their replies apart.
        self.scope = f"{provider.name} {getattr(provider, 'base_url', None) or ''}".strip()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._totals: dict[str, Totals] = {}
        self._random = random.Random()

    def complete(self, request: Request, *, role: str = "", run_id: str | None = None,
                 call_index: int | None = None) -> Reply:
        """The reply to `request`; ProviderError (one line) once retries are spent or on a lasting failure.
        `role`, `run_id` and `call_index` only label the call in the accounting and the store."""
        key = request_key(request, self.scope)
        cacheable = self.cache == "all" or (self.cache == "deterministic" and request.temperature == 0)
        hit = self._cache_get(key) if cacheable else None
        if hit is not None:
            # Nothing was spent on a cached reply: no tokens, no money, no waiting.
            reply = dataclasses.replace(hit, input_tokens=0, output_tokens=0, cost_usd=0.0, cached=True, seconds=0.0)
            self._account(request, reply, None, role, run_id, call_index, key, attempts=0)
            return reply
        start = time.monotonic()
        attempts = 0
        with self._slots:
            while True:
                attempts += 1
                try:
                    reply = self.provider.complete(request)
                    break
                except TransientError as e:
                    if attempts > self.max_retries:
                        error = ProviderError(f"{e} (gave up after {attempts} attempt{'s' * (attempts > 1)})")
                        self._fail(request, error, time.monotonic() - start, role, run_id, call_index, key, attempts)
                        raise error from None
                    time.sleep(self._delay(attempts, e.retry_after))
                except ProviderError as e:
                    self._fail(request, e, time.monotonic() - start, role, run_id, call_index, key, attempts)
                    raise
        cost = reply.cost_usd
        if cost is None:
            cost = cost_of(reply.model, reply.input_tokens, reply.output_tokens, self.prices)
        if cost is None and reply.model != request.model:
            cost = cost_of(request.model, reply.input_tokens, reply.output_tokens, self.prices)
        reply = dataclasses.replace(reply, cost_usd=cost, seconds=time.monotonic() - start)
        if cacheable:
            self._cache_put(key, request, reply)
        self._account(request, reply, None, role, run_id, call_index, key, attempts)
        return reply

    def totals(self, role: str | None = None) -> Totals:
        """What the calls so far used: of one role, or of all."""
        with self._lock:
            if role is not None:
                return dataclasses.replace(self._totals.get(role, Totals()))
            total = Totals()
            for part in self._totals.values():
                for f in dataclasses.fields(Totals):
                    setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
            return total

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before attempt `attempt + 1`: doubling, capped, half of it random so that
        concurrent callers spread out; never less than what the server asked (within the cap)."""
        ceiling = min(self.backoff_cap_s, self.backoff_s * 2 ** (attempt - 1))
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_cap_s))
        return delay

    def _fail(self, request: Request, error: ProviderError, seconds: float, role: str, run_id: str | None,
              call_index: int | None, key: str, attempts: int) -> None:
        failed = Reply(text="", input_tokens=0, output_tokens=0, cost_usd=None, model=request.model, seconds=seconds)
        self._account(request, failed, str(error), role, run_id, call_index, key, attempts)

    def _account(self, request: Request, reply: Reply, error: str | None, role: str, run_id: str | None,
                 call_index: int | None, key: str, attempts: int) -> None:
        with self._lock:
            totals = self._totals.setdefault(role, Totals())
            totals.attempts += attempts
            totals.seconds += reply.seconds
            if error is not None:
                totals.failed += 1
            else:
                totals.calls += 1
                totals.cached += reply.cached
                totals.input_tokens += reply.input_tokens
                totals.output_tokens += reply.output_tokens
                if reply.cost_usd is None:
                    totals.unpriced += 1
                else:
                    totals.cost_usd += reply.cost_usd
        if self.store is not None:
            self.store.record_llm_call(LLMCall(
                run_id=run_id, role=role, provider=self.provider.name, model=reply.model,
                prompt=transcript(request.messages), reply=reply.text, prompt_tokens=reply.input_tokens,
                completion_tokens=reply.output_tokens, cost=reply.cost_usd, latency_s=reply.seconds,
                cached=reply.cached, error=error, request_key=key, call_index=call_index,
            ))

    def _cache_path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> Reply | None:
        try:
            data = json.loads(self._cache_path(key).read_text())
            return Reply(**data["reply"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or written by another version: ask the provider

    def _cache_put(self, key: str, request: Request, reply: Reply) -> None:
        path = self._cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        data = {"request": dataclasses.asdict(request), "reply": dataclasses.asdict(reply)}
        scratch.write_text(json.dumps(data, indent=1))
        os.replace(scratch, path)  # whole or absent, for readers in other threads and processes


def request_key(request: Request, scope: str = "") -> str:
    """The sha256 of the whole request (every message and parameter) and where it is sent."""
    blob = json.dumps({"scope": scope, "request": dataclasses.asdict(request)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
