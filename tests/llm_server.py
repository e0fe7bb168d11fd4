"""An OpenAI-compatible chat-completions server on loopback, with scripted replies: for the end-to-end
tests (tests/test_llm_e2e.py) and the transcript demo (benchmarks/llm_loopback_demo.py).

    with ChatServer(replies={"coder": [...], "planner": [...]}, failures={2: 429, 5: 500}) as server:
        ... kernelwright optimize TASK --generator llm --model test-model --base-url {server.url} ...

Each request is answered with the next reply of its role, the role read from the system prompt
("Your role: the coder."), so calls in flight at once still get their own role's replies. A request
whose number (1-based, over all roles) is in `failures` gets that HTTP status instead (a 429 says
Retry-After: 0), and its reply stays queued for the retry. Usage is reported as the prompt's and
the reply's characters / 4. Every exchange is logged for the tests to compare with the store.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_ROLE = re.compile(r"Your role: the (\w+)")


@dataclass
class Exchange:
    number: int  # 1-based, in arrival order
    role: str
    body: dict[str, Any]  # the request as sent
    status: int  # HTTP status answered
    reply: str | None = None  # None for an injected failure
    prompt_tokens: int = 0
    completion_tokens: int = 0


def approx_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def replies_from(folder: Path, roles: Iterable[str]) -> dict[str, list[str]]:
    """The reply files of a folder (NN_ROLE_*.md, in name order) grouped by the role their name says."""
    known = tuple(roles)
    grouped: dict[str, list[str]] = {role: [] for role in known}
    for path in sorted(folder.glob("*.md")):
        role = next((r for r in known if f"_{r}" in path.stem), None)
        if role is None:
            raise ValueError(f"{path}: the name says none of the roles {', '.join(known)}")
        grouped[role].append(path.read_text())
    return grouped


class ChatServer:
    def __init__(self, replies: dict[str, list[str]], failures: dict[int, int] | None = None) -> None:
        self.replies = {role: list(texts) for role, texts in replies.items()}
        self.failures = dict(failures or {})
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="chat-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and headers for one request."""
        messages = body.get("messages") or []
        system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
        found = _ROLE.search(system)
        role = found.group(1) if found else "?"
        with self._lock:
            number = len(self.log) + 1
            status = self.failures.get(number)
            if status is not None:
                self.log.append(Exchange(number, role, body, status))
                headers = {"Retry-After": "0"} if status == 429 else {}
                return status, {"error": {"message": f"scripted {status} for request {number}",
                                          "type": "scripted"}}, headers
            queue = self.replies.get(role) or []
            if not queue:
                self.log.append(Exchange(number, role, body, 400))
                return 400, {"error": {"message": f"the script has no more {role} replies"}}, {}
            text = queue.pop(0)
            prompt_tokens = sum(approx_tokens(str(m.get("content", ""))) for m in messages)
            exchange = Exchange(number, role, body, 200, text, prompt_tokens, approx_tokens(text))
            self.log.append(exchange)
        usage = {"prompt_tokens": exchange.prompt_tokens, "completion_tokens": exchange.completion_tokens,
                 "total_tokens": exchange.prompt_tokens + exchange.completion_tokens}
        return 200, {
            "id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", ""), "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        }, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass  # the exchanges are in server.log; stderr stays the test's

            def do_POST(self) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                self._send(*server.answer(body))

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
