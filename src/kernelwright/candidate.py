"""Candidates: a Python source defining `ModelNew` (the KernelBench convention), plus where it came from.

The evaluator only ever reads a candidate's text in the parent process; the
code runs in a worker. Generators and search (later) add lineage metadata.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CandidateError(Exception):
    """A candidate that cannot even be read; one line naming the file."""


@dataclass(frozen=True)
class Candidate:
    source: str
    name: str = "candidate"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Content hash: the same source is the same candidate, so its evaluation can be reused."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def load_candidate(path: str | Path) -> Candidate:
    path = Path(path)
    try:
        return Candidate(source=path.read_text(), name=path.stem)
    except OSError as e:
        raise CandidateError(f"{path}: cannot read candidate file ({e.strerror or e})") from None
