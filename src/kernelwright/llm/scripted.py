"""The scripted provider: replies given in advance, in order, for tests and demos.

`ScriptedProvider(["reply 1", "reply 2"])`, or a folder whose `.md`/`.txt`
files are the replies in name order (`provider = "scripted:FOLDER"`). An item
may be a full Reply (to script tokens and cost) or a ProviderError (raised in
its turn, to script failures). Every request received is kept in `requests`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from kernelwright.llm.provider import ProviderError, Reply, Request

ScriptItem = str | Reply | ProviderError


class ScriptedProvider:
    name = "scripted"

    def __init__(self, replies: Sequence[ScriptItem] | str | Path) -> None:
        if isinstance(replies, (str, Path)):
            self.source = str(replies)
            self.replies: list[ScriptItem] = [p.read_text() for p in _reply_files(Path(replies))]
        else:
            self.source = "the list given"
            self.replies = list(replies)
        self.requests: list[Request] = []
        self._lock = threading.Lock()  # several generator calls may ask at once; each takes the next item

    def complete(self, request: Request) -> Reply:
        with self._lock:
            index = len(self.requests)
            self.requests.append(request)
        if index >= len(self.replies):
            raise ProviderError(f"scripted: all {len(self.replies)} replies of {self.source} are used")
        item = self.replies[index]
        if isinstance(item, ProviderError):
            raise item
        if isinstance(item, Reply):
            return item
        return Reply(text=item, input_tokens=0, output_tokens=0, cost_usd=0.0, model=request.model)


def _reply_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ProviderError(f"scripted: {folder} is not a folder of reply files")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".md", ".txt") and not p.name.startswith("."))
    if not files:
        raise ProviderError(f"scripted: {folder} has no .md or .txt reply files")
    return files
