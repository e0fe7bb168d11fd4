"""A worker process seen from the parent: start it, ask it things, survive it.

Whatever the worker does (segfault, device fault, endless loop, flood of
output), `request` returns or raises `WorkerFault` with a reason, and the
parent lives on. A faulted worker is dead or killed; the caller starts a new one.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelwright.evaluate import wire

_POLL_S = 0.05  # how often a waiting parent checks the worker's pulse and output size
_LOG_TAIL_BYTES = 4000


@dataclass
class WorkerFault(Exception):
    kind: str  # "crash", "timeout", "flood"
    message: str
    log_tail: str = ""

    def __str__(self) -> str:
        return self.message


class WorkerProcess:
    """One spawned worker (role "reference" or "candidate") on one device."""

    def __init__(self, role: str, device: str, env: dict[str, str] | None = None,
                 output_limit_bytes: int = 16 * 1024 * 1024) -> None:
        from kernelwright.evaluate import worker  # the child's entry point

        self.role = role
        self.device = device
        self.output_limit_bytes = output_limit_bytes
        fd, log = tempfile.mkstemp(prefix=f"kernelwright-{role}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        # spawn, never fork: a forked child would share the parent's CUDA state.
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._process = ctx.Process(
            target=worker.main, args=(child_conn, role, device, str(self.log_path), env or {}),
            name=f"kernelwright-{role}", daemon=True,
        )
        with sigint_blocked():
            self._process.start()
        child_conn.close()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def request(self, command: str, timeout: float, blobs: list[bytes] = (), **args: Any) -> tuple[Any, list[bytes]]:
        """Send one command; return (result, blobs) or raise WorkerFault / WorkerError."""
        if not self.alive:
            raise WorkerFault("crash", f"{self.role} worker is not running", self.log_tail())
        try:
            wire.send(self._conn, {"cmd": command, "args": args}, list(blobs))
        except (BrokenPipeError, OSError):
            self._raise_dead()
        deadline = time.monotonic() + timeout
        while True:
            if self._conn.poll(_POLL_S):
                try:
                    reply, reply_blobs = wire.recv(self._conn)
                except (EOFError, OSError, ValueError):
                    self._raise_dead()
                if reply.get("ok"):
                    return reply.get("result"), reply_blobs
                raise WorkerError(**reply["error"])
            if not self.alive:
                self._raise_dead()
            if self._log_size() > self.output_limit_bytes:
                self.kill()
                raise WorkerFault("flood", f"the {self.role} printed more than "
                                  f"{self.output_limit_bytes // (1024 * 1024)} MiB of output", self.log_tail())
            if time.monotonic() > deadline:
                self.kill()
                raise WorkerFault("timeout", f"'{command}' took longer than {timeout:g} s", self.log_tail())

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within a few seconds."""
        if self.alive:
            try:
                wire.send(self._conn, {"cmd": "exit", "args": {}})
                self._process.join(5)
            except (BrokenPipeError, OSError):
                pass
        self.kill()
        self.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(10)
        self._conn.close()

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, self._log_size() - _LOG_TAIL_BYTES))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _raise_dead(self) -> None:
        self._process.join(5)
        code = self._process.exitcode
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
            if -code == signal.SIGSEGV:
                how += " (segmentation fault)"
        else:
            how = f"exited with code {code}"
        raise WorkerFault("crash", f"the {self.role} worker {how}", self.log_tail())


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block Ctrl-C in this thread while it starts processes: they inherit the mask, so a Ctrl-C
    that arrives while one is still importing cannot kill it mid-start with a traceback. The
    child ignores SIGINT, then unblocks it (worker.main); the parent alone decides what stops."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class WorkerError(Exception):
    """The worker caught an exception and said so (it is still alive unless `fatal`)."""

    def __init__(self, kind: str, message: str, traceback: str = "", fatal: bool = False) -> None:
        super().__init__(message)
        self.kind = kind  # "compile", "oom", "device_fault", "task", "unsafe", "exception"
        self.message = message
        self.traceback = traceback
        self.fatal = fatal
