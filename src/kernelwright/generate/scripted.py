"""The scripted generator: proposes the `.py` files of a folder, in name order.

For tests and demos: `--generator scripted:FOLDER`. Request number k of a run
gets the files after those its earlier requests were given (`context.ordinal`),
whatever the strategy asked for; when the folder is used up it proposes
nothing, and the run ends. Each file is one candidate, named after the file.
"""

from __future__ import annotations

from pathlib import Path

from kernelwright.candidate import Candidate, load_candidate
from kernelwright.generate.base import Context, GeneratorError
from kernelwright.task import Task


class ScriptedGenerator:
    name = "scripted"

    def __init__(self, folder: str | None) -> None:
        if not folder:
            raise GeneratorError("the scripted generator needs a folder: --generator scripted:FOLDER")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise GeneratorError(f"{self.folder}: not a folder of candidate files (scripted generator)")
        self.files = sorted(p for p in self.folder.glob("*.py") if not p.name.startswith("_"))
        if not self.files:
            raise GeneratorError(f"{self.folder}: no candidate .py files (scripted generator)")

    def propose(self, task: Task, context: Context) -> list[Candidate]:
        chosen = self.files[context.ordinal:context.ordinal + context.count]
        return [load_candidate(path) for path in chosen]
