"""`kernelwright export`: a run's LLM transcripts as training data (JSONL; see `kernelwright.export`).

Registered on the app of `kernelwright.cli` (imported at its end).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from kernelwright.cli import _bad_input, app, errors
from kernelwright.cli_options import DEFAULT_DB
from kernelwright.cli_runs import _open
from kernelwright.export import FORMATS, write
from kernelwright.store import StoreError


@app.command("export")
def export_command(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id or a unique prefix of one."),
    form: str = typer.Option(..., "--format", help="rl: every LLM-written candidate with its reward; "
                                                   "sft: only those that passed, as chat messages."),
    out: Optional[Path] = typer.Option(None, "--out", help="JSONL file to write (default: standard output)."),
    db: Path = typer.Option(DEFAULT_DB, "--db", help="The store to read."),
) -> None:
    """Write (prompt, reply, verdict, reward) per LLM-written candidate of a run as JSON lines. Reward:
    0 when the candidate failed, else its speedup over the faster baseline (eager or torch.compile)."""
    if form not in FORMATS:
        _bad_input(f"--format must be one of {', '.join(FORMATS)}, got {form!r}")
    store = _open(db)
    with store:
        try:
            if out is None:
                count = write(store, run_id, form, sys.stdout)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("w", encoding="utf-8") as file:
                    count = write(store, run_id, form, file)
        except StoreError as e:
            _bad_input(str(e))
    errors.print(f"{count} record{'s' if count != 1 else ''} written" + (f" to {out}" if out else ""),
                 markup=False, highlight=False)
