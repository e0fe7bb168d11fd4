"""LLM providers and the client, through the real SDKs against HTTP servers on loopback started here."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kernelwright.config import Config, ConfigError, LLMSettings, load_config
from kernelwright.llm import (
    Client,
    Message,
    ProviderError,
    Reply,
    Request,
    TransientError,
    make_client,
    make_provider,
)
from kernelwright.llm.client import DEFAULT_PRICES, price_of
from kernelwright.llm.exchange import ExchangeProvider
from kernelwright.llm.openai_compat import OpenAICompatProvider
from kernelwright.llm.scripted import ScriptedProvider
from kernelwright.store import Store

ASK = Request((Message("system", "You write kernels."), Message("user", "Write a ReLU.")), model="test-model",
              temperature=0.0, max_tokens=256)


@dataclass
class Action:
    """What the fake server does with one request: answer `text`, or answer `status` with an error."""

    text: str = "ok"
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    input_tokens: int = 11
    output_tokens: int = 7
    model: str | None = None  # None: the model asked for


class FakeServer:
    """A loopback server speaking OpenAI chat completions (POST /v1/chat/completions) and Anthropic
    messages (POST /v1/messages): the scripted actions in order, then `Action()` for every request."""

    def __init__(self, actions: list[Action] | None = None) -> None:
        self.actions = list(actions or [])
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # a request still sleeping after a client timeout must not hold the test
        self.httpd.handle_error = lambda request, address: None  # clients that timed out close mid-reply
        # A short poll: shutdown() waits for the loop's next look, once per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _next(self, body: dict[str, Any], path: str, headers: dict[str, str]) -> Action:
        with self._lock:
            self.requests.append({"path": path, "body": body, "headers": headers})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.actions.pop(0) if self.actions else Action()

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                action = server._next(body, self.path, {k.lower(): v for k, v in self.headers.items()})
                try:
                    time.sleep(action.delay_s)
                    anthropic = self.path.endswith("/messages")
                    if action.status != 200:
                        payload: dict[str, Any] = {"error": {"message": f"scripted {action.status}", "type": "error"}}
                        if anthropic:
                            payload["type"] = "error"
                    elif anthropic:
                        payload = anthropic_message(action, action.model or body["model"])
                    else:
                        payload = chat_completion(action, action.model or body["model"])
                    data = json.dumps(payload).encode()
                    self.send_response(action.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in action.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                finally:
                    # Done before the body goes out: a client slot freed by this reply cannot send its next
                    # request before this one stops counting (after the write, it could: a count of 3 of 2).
                    server._done()
                self.wfile.write(data)

        return Handler


def chat_completion(action: Action, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": action.text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": action.input_tokens, "completion_tokens": action.output_tokens,
                  "total_tokens": action.input_tokens + action.output_tokens},
    }


def anthropic_message(action: Action, model: str) -> dict[str, Any]:
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": action.text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": action.input_tokens, "output_tokens": action.output_tokens},
    }


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, base URL or proxy from the machine; a cache of the test's own."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("KERNELWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[FakeServer] = []

    def start(actions: list[Action] | None = None) -> FakeServer:
        server = FakeServer(actions)
        server.thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.httpd.shutdown()
        server.httpd.server_close()


def openai_client(server: FakeServer, **kw: Any) -> Client:
    timeout_s = kw.pop("timeout_s", 10.0)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("cache", "off")
    return Client(OpenAICompatProvider(f"{server.url}/v1", timeout_s=timeout_s), **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- OpenAI-compatible servers


def test_a_reply_with_its_tokens_and_the_request_as_sent(serve: Any) -> None:
    server = serve([Action("```python\nprint(1)\n```", input_tokens=120, output_tokens=30)])
    reply = openai_client(server).complete(ASK)
    assert reply.text == "```python\nprint(1)\n```"
    assert (reply.input_tokens, reply.output_tokens, reply.model, reply.cached) == (120, 30, "test-model", False)
    assert reply.cost_usd is None  # a model the price table does not know
    assert reply.seconds > 0
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"] == [{"role": "system", "content": "You write kernels."},
                                        {"role": "user", "content": "Write a ReLU."}]
    assert (sent["body"]["temperature"], sent["body"]["max_tokens"]) == (0.0, 256)
    assert "reasoning_effort" not in sent["body"]  # not set: not sent
    assert sent["headers"]["authorization"] == "Bearer no-key"  # a keyless server gets a placeholder


def test_the_key_from_the_environment_and_reasoning_effort_are_sent(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve()
    monkeypatch.setenv("MY_VLLM_KEY", "sk-local")
    provider = make_provider(LLMSettings(model="m", base_url=f"{server.url}/v1", api_key_env="MY_VLLM_KEY"))
    provider.complete(Request((Message("user", "hi"),), model="m", reasoning_effort="high"))
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-local"
    assert server.requests[0]["body"]["reasoning_effort"] == "high"


def test_429_then_500_are_retried_until_the_reply(serve: Any) -> None:
    server = serve([Action(status=429, headers={"Retry-After": "0"}), Action(status=500), Action("third time")])
    client = openai_client(server, max_retries=3)
    assert client.complete(ASK).text == "third time"
    assert len(server.requests) == 3  # the SDK's own retries are off: every attempt is ours
    totals = client.totals()
    assert (totals.calls, totals.attempts, totals.failed) == (1, 3, 0)


def test_retries_are_capped_and_the_last_error_says_so(serve: Any) -> None:
    server = serve([Action(status=503)] * 5)
    with pytest.raises(ProviderError, match=r"answered 503: scripted 503 \(gave up after 3 attempts\)"):
        openai_client(server, max_retries=2).complete(ASK)
    assert len(server.requests) == 3


def test_a_client_error_is_not_retried_and_a_bad_key_names_the_variable(serve: Any) -> None:
    server = serve([Action(status=400), Action(status=401)])
    client = openai_client(server, max_retries=3)
    with pytest.raises(ProviderError, match=r"refused the request \(400\)"):
        client.complete(ASK)
    with pytest.raises(ProviderError, match=r"rejected the API key \(401\): set OPENAI_API_KEY"):
        client.complete(ASK)
    assert len(server.requests) == 2
    assert client.totals().failed == 2


def test_a_slow_server_times_out_with_a_clear_error(serve: Any) -> None:
    server = serve([Action(delay_s=3.0)])
    start = time.monotonic()
    with pytest.raises(ProviderError, match=r"no reply within 0.3 s \(gave up after 1 attempt\)"):
        openai_client(server, timeout_s=0.3, max_retries=0).complete(ASK)
    assert time.monotonic() - start < 2.5


def test_an_unreachable_server_is_named_after_the_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = Client(OpenAICompatProvider(url, timeout_s=5), max_retries=1, backoff_s=0.01, cache="off")
    with pytest.raises(ProviderError) as error:
        client.complete(ASK)
    message = str(error.value)
    assert f"cannot reach the OpenAI-compatible server at {url}" in message
    assert "--base-url" in message and message.endswith("(gave up after 2 attempts)")
    assert "\n" not in message


def test_a_missing_key_for_openai_names_the_variable() -> None:
    with pytest.raises(ProviderError, match=r"no API key for https://api.openai.com/v1: set OPENAI_API_KEY"):
        make_provider(LLMSettings(model="gpt-4o"))
    with pytest.raises(ProviderError, match=r"api_key_env names NOT_SET_ANYWHERE, which is not set"):
        make_provider(LLMSettings(model="m", base_url="http://127.0.0.1:9/v1", api_key_env="NOT_SET_ANYWHERE"))


def test_the_cache_answers_an_identical_deterministic_request(serve: Any, tmp_path: Path) -> None:
    server = serve()
    first = openai_client(server, cache="deterministic", cache_dir=tmp_path / "llm")
    assert first.complete(ASK).cached is False
    again = first.complete(ASK)
    assert (again.text, again.cached, again.input_tokens, again.cost_usd) == ("ok", True, 0, 0.0)
    # On disk: a new client (a new process) finds it too.
    later = openai_client(server, cache="deterministic", cache_dir=tmp_path / "llm")
    assert later.complete(ASK).cached is True
    assert len(server.requests) == 1
    # Any other request, or one at a temperature above 0 in this mode, goes to the server.
    later.complete(Request(ASK.messages, model=ASK.model, temperature=0.0, max_tokens=257))
    warm = Request(ASK.messages, model=ASK.model, temperature=0.7)
    later.complete(warm)
    later.complete(warm)
    assert len(server.requests) == 4
    # "all" caches those too; "off" caches nothing.
    everything = openai_client(server, cache="all", cache_dir=tmp_path / "all")
    everything.complete(warm)
    assert everything.complete(warm).cached is True
    assert len(server.requests) == 5
    nothing = openai_client(server, cache="off")
    nothing.complete(ASK)
    nothing.complete(ASK)
    assert len(server.requests) == 7


def test_the_concurrency_limit_holds_calls_in_flight(serve: Any) -> None:
    server = serve([Action(f"r{i}", delay_s=0.25) for i in range(6)])
    client = openai_client(server, concurrency=2)
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda i: client.complete(Request((Message("user", str(i)),), model="m")), range(6)))
    assert sorted(r.text for r in replies) == [f"r{i}" for i in range(6)]
    assert server.max_in_flight == 2


def test_every_call_is_priced_counted_and_stored(serve: Any, tmp_path: Path) -> None:
    server = serve([Action("a", input_tokens=1_000_000, output_tokens=100_000, model="gpt-4o-2024-08-06"),
                    Action("b", input_tokens=5, output_tokens=5), Action(status=404)])
    store = Store(tmp_path / "kw.db")
    client = openai_client(server, store=store)
    priced = client.complete(Request(ASK.messages, model="gpt-4o"), role="coder", run_id="run-1", call_index=0)
    assert priced.cost_usd == pytest.approx(2.50 + 1.00)  # $2.50 and $10 per million, dated name priced
    unpriced = client.complete(ASK, role="judge", run_id="run-1", call_index=1)
    assert unpriced.cost_usd is None
    with pytest.raises(ProviderError, match=r"not found \(404\)"):
        client.complete(ASK, role="judge", run_id="run-1", call_index=2)

    calls = store.llm_calls("run-1")
    assert [(c.role, c.provider, c.model, c.reply, c.call_index) for c in calls] == [
        ("coder", "openai", "gpt-4o-2024-08-06", "a", 0), ("judge", "openai", "test-model", "b", 1),
        ("judge", "openai", "test-model", "", 2)]
    assert calls[0].prompt == "## system\n\nYou write kernels.\n\n## user\n\nWrite a ReLU."
    assert (calls[0].prompt_tokens, calls[0].completion_tokens, calls[0].cost) == (1_000_000, 100_000, 3.5)
    assert calls[1].cost is None and calls[1].error is None
    assert "404" in calls[2].error and calls[0].latency_s > 0 and len(calls[0].request_key) == 64
    assert store.usage("run-1").cost == pytest.approx(3.5) and store.usage("run-1").tokens == 1_100_010

    coder, judge = client.totals("coder"), client.totals("judge")
    assert (coder.calls, coder.input_tokens, coder.cost_usd, coder.unpriced) == (1, 1_000_000, 3.5, 0)
    assert (judge.calls, judge.failed, judge.unpriced, judge.output_tokens) == (1, 1, 1, 5)
    assert client.totals().calls == 2 and client.totals().attempts == 3


def test_prices_are_looked_up_by_name_prefix_free_and_date_free() -> None:
    assert price_of("gpt-4o", DEFAULT_PRICES) == (2.50, 10.00)
    assert price_of("openai/gpt-4o-mini-2024-07-18", DEFAULT_PRICES) == (0.15, 0.60)
    assert price_of("claude-sonnet-4-5-20250929", DEFAULT_PRICES) == (3.00, 15.00)
    assert price_of("gpt-4o-turbo-special", DEFAULT_PRICES) is None  # not a date: another model
    assert price_of("Qwen/Qwen2.5-Coder-32B-Instruct", DEFAULT_PRICES) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    client = Client(ScriptedProvider([]), backoff_s=1.0, backoff_cap_s=8.0, cache="off")
    assert 0.5 <= client._delay(1, None) <= 1.0
    assert 2.0 <= client._delay(3, None) <= 4.0
    assert 4.0 <= client._delay(30, None) <= 8.0
    assert client._delay(1, retry_after=5.0) == 5.0
    assert client._delay(1, retry_after=600.0) == 8.0


# -- Anthropic


def test_anthropic_through_its_sdk(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("anthropic", reason="the anthropic extra is not installed (pip install anthropic)")
    server = serve([Action(status=529), Action("claude says hi", input_tokens=40, output_tokens=9)])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    settings = LLMSettings(provider="anthropic", model="claude-haiku-4-5", base_url=server.url, max_retries=2)
    client = make_client(settings)
    client.backoff_s = 0.01
    request = Request(ASK.messages, model="claude-haiku-4-5", temperature=0.2, reasoning_effort="low")
    reply = client.complete(request)
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("claude says hi", 40, 9)
    assert reply.cost_usd == pytest.approx((40 * 1.00 + 9 * 5.00) / 1e6)
    assert len(server.requests) == 2  # the 529 (overloaded) was retried
    sent = server.requests[1]
    assert sent["path"] == "/v1/messages"
    # Older SDK releases send the key as x-api-key, newer ones as a bearer token.
    assert "sk-ant-test" in (sent["headers"].get("x-api-key"), sent["headers"].get("authorization", "")[7:])
    body = sent["body"]
    assert body["system"] == "You write kernels."
    assert body["messages"] == [{"role": "user", "content": "Write a ReLU."}]
    assert (body["max_tokens"], body["temperature"], body["output_config"]) == (8192, 0.2, {"effort": "low"})


def test_anthropic_errors_name_the_variable_and_the_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("anthropic", reason="the anthropic extra is not installed (pip install anthropic)")
    with pytest.raises(ProviderError, match=r"no API key for https://api.anthropic.com: set ANTHROPIC_API_KEY"):
        make_provider(LLMSettings(provider="anthropic", model="claude-sonnet-4-5"))
    monkeypatch.setitem(sys.modules, "anthropic", None)  # as if not installed
    with pytest.raises(ProviderError, match=r"pip install 'kernelwright\[anthropic\]'"):
        make_provider(LLMSettings(provider="anthropic", model="claude-sonnet-4-5"))


def test_litellm_through_its_sdk(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("litellm", reason="the litellm extra is not installed (pip install 'kernelwright[litellm]')")
    server = serve([Action(status=429, headers={"Retry-After": "0"}), Action("lite", model="gpt-4o")])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-lite")
    client = make_client(LLMSettings(provider="litellm", model="openai/gpt-4o", base_url=f"{server.url}/v1",
                                     cache="off"))
    client.backoff_s = 0.01
    reply = client.complete(Request(ASK.messages, model="openai/gpt-4o", max_tokens=50))
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("lite", 11, 7)
    assert reply.cost_usd == pytest.approx((11 * 2.50 + 7 * 10.00) / 1e6)
    assert len(server.requests) == 2 and server.requests[1]["headers"]["authorization"] == "Bearer sk-lite"


def test_litellm_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(ProviderError, match=r"pip install 'kernelwright\[litellm\]'"):
        make_provider(LLMSettings(provider="litellm", model="openai/gpt-4o"))


# -- exchange and scripted


def answer_prompts(folder: Path, count: int, stop: threading.Event) -> None:
    """A program in the loop: answers each prompt file by writing elsewhere and renaming."""
    answered: set[str] = set()
    while len(answered) < count and not stop.is_set():
        for prompt in sorted(folder.glob("*-prompt.md")):
            number = prompt.name.split("-")[0]
            if number not in answered:
                scratch = folder / f"{number}.partial"
                scratch.write_text(f"answer {number} to: {prompt.read_text().splitlines()[-1]}")
                scratch.rename(folder / f"{number}-reply.md")
                answered.add(number)
        time.sleep(0.02)


def test_the_exchange_waits_for_the_reply_file(tmp_path: Path) -> None:
    folder = tmp_path / "exchange"
    notes: list[str] = []
    provider = ExchangeProvider(folder, timeout_s=10, poll_s=0.02, notify=notes.append)
    stop = threading.Event()
    answerer = threading.Thread(target=answer_prompts, args=(folder, 3, stop), daemon=True)
    answerer.start()
    try:
        first = provider.complete(ASK)
        with ThreadPoolExecutor(2) as pool:
            others = list(pool.map(provider.complete, [Request((Message("user", f"q{i}"),), model="m") for i in (1, 2)]))
    finally:
        stop.set()
        answerer.join()
    assert first.text == "answer 0001 to: Write a ReLU."
    assert (first.input_tokens, first.cost_usd, first.model) == (0, 0.0, "test-model")
    # Asked at once, the two took the next two numbers, in either order, each answered with its own prompt.
    numbers_and_questions = [r.text.removeprefix("answer ").split(" to: ") for r in others]
    assert sorted(n for n, _ in numbers_and_questions) == ["0002", "0003"]
    assert sorted(q for _, q in numbers_and_questions) == ["q1", "q2"]
    prompt = (folder / "0001-prompt.md").read_text()
    assert str(folder / "0001-reply.md") in prompt and "## system\n\nYou write kernels." in prompt
    assert "model: test-model, temperature: 0.0, max_tokens: 256" in prompt
    assert notes[0] == (f"exchange: prompt written to {folder / '0001-prompt.md'}; put the reply in "
                        f"{folder / '0001-reply.md'} (waiting up to 10 s)")
    assert sorted(p.name for p in folder.iterdir()) == [f"000{i}-{kind}.md" for i in (1, 2, 3)
                                                          for kind in ("prompt", "reply")]


def test_the_exchange_times_out_telling_where_the_reply_goes(tmp_path: Path) -> None:
    provider = ExchangeProvider(tmp_path, timeout_s=0.2, poll_s=0.02, notify=lambda _: None)
    with pytest.raises(ProviderError, match=r"no reply to .*0001-prompt.md within 0.2 s: write it to "
                                            r".*0001-reply.md and run again"):
        Client(provider, max_retries=3, cache="off").complete(ASK)
    assert not (tmp_path / "0002-prompt.md").exists()  # not retried: waiting longer is the person's call


def test_the_scripted_provider_replies_in_order_from_a_list_or_a_folder(tmp_path: Path) -> None:
    provider = ScriptedProvider(["one", Reply("two", 3, 4, 0.5, "x"), TransientError("busy")])
    assert provider.complete(ASK).text == "one"
    assert provider.complete(ASK) == Reply("two", 3, 4, 0.5, "x")
    with pytest.raises(TransientError, match="busy"):
        provider.complete(ASK)
    with pytest.raises(ProviderError, match="all 3 replies of the list given are used"):
        provider.complete(ASK)
    assert len(provider.requests) == 4

    (tmp_path / "b.md").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "notes.json").write_text("{}")
    from_files = make_client(LLMSettings(provider=f"scripted:{tmp_path}", cache="off"))
    assert [from_files.complete(ASK).text, from_files.complete(ASK).text] == ["first", "second"]
    with pytest.raises(ProviderError, match="not a folder"):
        make_provider(LLMSettings(provider=f"scripted:{tmp_path / 'missing'}"))


def test_the_client_retries_a_scripted_transient_failure_and_records_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "kw.db")
    client = Client(ScriptedProvider([TransientError("busy"), "fine"]), backoff_s=0.001, cache="off", store=store)
    assert client.complete(ASK, role="coder", run_id="r").text == "fine"
    assert client.totals().attempts == 2 and [c.reply for c in store.llm_calls("r")] == ["fine"]


# -- choosing a provider, and the [llm] settings


def test_the_provider_is_chosen_by_name_never_by_fallback(tmp_path: Path) -> None:
    (tmp_path / "reply.md").write_text("a reply")
    assert make_provider(LLMSettings(base_url="http://127.0.0.1:9/v1", model="m")).name == "openai"
    assert make_provider(Config(llm=LLMSettings(model="m", base_url="http://localhost:9/v1"))).name == "openai"
    exchange = make_provider(LLMSettings(provider=f"exchange:{tmp_path / 'x'}"))
    assert exchange.name == "exchange" and exchange.folder == tmp_path / "x"
    with pytest.raises(ProviderError, match="no LLM chosen: pass --model"):
        make_provider(LLMSettings())
    with pytest.raises(ProviderError, match="unknown LLM provider 'gemini'"):
        make_provider(LLMSettings(provider="gemini", model="m"))
    with pytest.raises(ProviderError, match="the openai provider needs a model"):
        make_provider(LLMSettings(provider="openai"))
    with pytest.raises(ProviderError, match="scripted provider needs a folder"):
        make_provider(LLMSettings(provider="scripted"))
    with pytest.raises(ProviderError, match="cache must be one of off, deterministic, all"):
        make_client(LLMSettings(provider=f"scripted:{tmp_path}", cache="sometimes"))


def test_the_llm_table_loads_and_old_configs_keep_their_run_keys(tmp_path: Path) -> None:
    (tmp_path / "reply.md").write_text("a reply")
    path = tmp_path / "run.toml"
    path.write_text('strategy = "evolve"\n[llm]\nmodel = "qwen-coder"\nbase_url = "http://127.0.0.1:8000/v1"\n'
                    'temperature = 0\ntimeout_s = 60\n[llm.prices]\nqwen-coder = [0, 0.5]\n')
    config = load_config(path)
    assert (config.llm.model, config.llm.temperature, config.llm.timeout_s) == ("qwen-coder", 0.0, 60.0)
    client = make_client(config)
    assert client.prices["qwen-coder"] == (0.0, 0.5) and client.prices["gpt-4o"] == DEFAULT_PRICES["gpt-4o"]

    path.write_text('[llm]\nmodl = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'modl'"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"\[llm.prices\] m: expected \[input, output\]"):
        make_client(LLMSettings(provider=f"scripted:{tmp_path}", prices={"m": [1]}))

    # How calls are made does not make another run; what is asked (the model) does.
    plain = Config().run_key("task")
    assert Config(llm=LLMSettings(timeout_s=5, max_retries=1, cache="off")).run_key("task") == plain
    assert Config(llm=LLMSettings(model="m")).run_key("task") != plain
