"""The exchange provider: a person or another program answers in files.

Each request is written to `FOLDER/NNNN-prompt.md` (numbered in order, never
overwritten, also across processes sharing the folder) with a header that says
where the answer goes; the provider then waits for `FOLDER/NNNN-reply.md` and
takes its whole text as the model's reply. A reply file counts once it is
non-empty and its size held still between two polls, so an editor's save or a
program's write is read whole (a program may also write elsewhere and rename).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kernelwright.llm.provider import ProviderError, Reply, Request, transcript

DEFAULT_FOLDER = "kernelwright-exchange"
_PROMPT = re.compile(r"^(\d+)-prompt\.md$")


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ExchangeProvider:
    name = "exchange"

    def __init__(self, folder: str | Path = DEFAULT_FOLDER, timeout_s: float = 3600.0, poll_s: float = 0.5,
                 notify: Callable[[str], None] = _to_stderr) -> None:
        self.folder = Path(folder).resolve()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProviderError(f"exchange: cannot make the folder {self.folder} ({e.strerror or e})") from None
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.notify = notify

    def complete(self, request: Request) -> Reply:
        start = time.monotonic()
        prompt, reply = self._write_prompt(request)
        self.notify(f"exchange: prompt written to {prompt}; put the reply in {reply} "
                    f"(waiting up to {self.timeout_s:g} s)")
        text = self._wait_for(reply, prompt, start + self.timeout_s)
        return Reply(text=text, input_tokens=0, output_tokens=0,
                     cost_usd=0.0,  # nothing is billed through kernelwright; whoever answered knows their own cost
                     model=request.model, seconds=time.monotonic() - start)

    def _write_prompt(self, request: Request) -> tuple[Path, Path]:
        """Write the prompt under the next free number; the two paths (prompt, reply)."""
        number = 1 + max((int(m.group(1)) for p in self.folder.iterdir() if (m := _PROMPT.match(p.name))),
                         default=0)
        scratch = self.folder / f".prompt-{os.getpid()}-{id(request)}-{time.monotonic_ns()}.tmp"
        while True:
            prompt = self.folder / f"{number:04d}-prompt.md"
            reply = self.folder / f"{number:04d}-reply.md"
            scratch.write_text(_prompt_text(request, number, reply, self.timeout_s))
            try:
                # A hard link appears whole and fails if the name is taken: another writer's number is skipped.
                os.link(scratch, prompt)
                return prompt, reply
            except FileExistsError:
                number += 1
            finally:
                scratch.unlink(missing_ok=True)

    def _wait_for(self, reply: Path, prompt: Path, deadline: float) -> str:
        last_size = -1
        while True:
            try:
                size = reply.stat().st_size
            except FileNotFoundError:
                size = -1
            if size > 0 and size == last_size:
                return reply.read_text()
            last_size = size
            if time.monotonic() >= deadline:
                raise ProviderError(f"exchange: no reply to {prompt} within {self.timeout_s:g} s: write it to "
                                    f"{reply} and run again (or raise [llm] timeout_s)")
            time.sleep(self.poll_s)


def _prompt_text(request: Request, number: int, reply: Path, timeout_s: float) -> str:
    settings = ", ".join(f"{name}: {value}" for name, value in (
        ("model", request.model), ("temperature", request.temperature), ("max_tokens", request.max_tokens),
        ("reasoning_effort", request.reasoning_effort)) if value is not None)
    return (f"<!-- kernelwright exchange, prompt {number:04d}. Answer it as the model would, and write the "
            f"whole answer to {reply} (kernelwright waits up to {timeout_s:g} s). -->\n"
            f"<!-- {settings} -->\n\n{transcript(request.messages)}\n")
