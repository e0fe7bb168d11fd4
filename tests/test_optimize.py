"""`kernelwright optimize`, `runs` and `show` for real: the CLI, the real evaluator on the CPU, and a
`kill -9` in the middle of a run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernelwright.store import Store

ROOT = Path(__file__).parent
TASK = ROOT / "fixtures" / "tasks" / "gelu.py"
SCRIPT = ROOT / "fixtures" / "runs" / "gelu_cpu"
QUICK = ROOT / "fixtures" / "runs" / "cpu_quick.toml"
SCRIPT_ORDER = sorted(p.stem for p in SCRIPT.glob("*.py"))


def kernelwright(*args: str, **kwargs) -> subprocess.Popen:  # noqa: ANN003
    # SIGINT's default action restored in the child: a pytest-xdist worker ignores SIGINT, and an ignored
    # SIGINT is inherited across exec, where Python then installs no KeyboardInterrupt handler.
    return subprocess.Popen([sys.executable, "-m", "kernelwright", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def optimize_args(db: Path, out: Path, budget: int = 4) -> list[str]:
    return ["optimize", str(TASK), "--generator", f"scripted:{SCRIPT}", "--config", str(QUICK),
            "--budget", str(budget), "--db", str(db), "--out", str(out)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("optimize")
    code, out, err = finish(kernelwright(*optimize_args(folder / "runs.db", folder / "out")))
    assert code == 0, err
    return folder / "runs.db", folder / "out", out


def test_a_run_records_every_verdict_and_answers_never_slower(finished_run: tuple[Path, Path, str]) -> None:
    db, out, stdout = finished_run
    with Store(db) as store:
        (record,) = store.list_runs()
        nodes = store.nodes(record.id)
    assert record.status == "finished" and record.stop_reason == "budget: 4 candidates evaluated"
    assert [n.name for n in nodes] == SCRIPT_ORDER
    statuses = [n.verdict["status"] for n in nodes]
    assert statuses == ["static_rejected", "compile_error", "passed", "incorrect"]  # malformed: a verdict, not a crash
    passed = nodes[2].verdict
    candidate_ms, eager_ms = passed["time"]["median_ms"], passed["baselines"]["eager"]["median_ms"]
    summary = json.loads((out / "run.json").read_text())
    best_py = (out / "best.py").read_text()
    if candidate_ms < eager_ms:
        assert summary["answer"]["kind"] == "candidate" and best_py == (SCRIPT / "02_cpu_gelu.py").read_text()
    else:  # the candidate is slower than eager here: the answer is the reference itself
        assert summary["answer"]["kind"] == "eager" and "class ModelNew(Model)" in best_py
    assert "02_cpu_gelu" in (out / "report.html").read_text() and (out / "report.md").exists()
    assert f"run {record.id}: finished" in stdout and "answer" in stdout


def test_runs_and_show_list_what_the_store_holds(finished_run: tuple[Path, Path, str]) -> None:
    db, _, _ = finished_run
    code, out, err = finish(kernelwright("runs", "--db", str(db)))
    assert code == 0, err
    with Store(db) as store:
        run_id = store.list_runs()[0].id
    assert run_id in out and "finished" in out
    code, out, err = finish(kernelwright("show", run_id[:4], "--db", str(db)))
    assert code == 0, err
    assert all(name in out for name in SCRIPT_ORDER) and "compile_error" in out
    code, out, _ = finish(kernelwright("show", run_id, "--db", str(db), "--source", "2"))
    assert code == 0 and out.strip() == (SCRIPT / "02_cpu_gelu.py").read_text().strip()


def test_kill_9_mid_run_then_the_same_command_finishes_it(tmp_path: Path) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    process = kernelwright(*optimize_args(db, out), start_new_session=True)
    deadline = time.monotonic() + 180
    before: dict[str, float] = {}
    while time.monotonic() < deadline and process.poll() is None:
        before = _evaluations(db)
        if len(before) >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the run and its workers, as an OOM killer or a lost machine would
    process.wait()
    assert 2 <= len(before) < 4
    with Store(db) as store:
        assert store.list_runs()[0].status == "running"  # killed: it could not say otherwise

    code, stdout, err = finish(kernelwright(*optimize_args(db, out)))
    assert code == 0, err
    assert "continuing run" in stdout
    after = _evaluations(db)
    assert len(after) == 4  # nothing lost, nothing evaluated twice
    assert all(after[c] == t for c, t in before.items())  # the evaluations from before the kill were kept
    with Store(db) as store:
        (record,) = store.list_runs()
        assert record.status == "finished"
        assert [n.name for n in store.nodes(record.id)] == SCRIPT_ORDER  # as an uninterrupted run


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        (["optimize", str(TASK), "-g", "nope"], "unknown generator 'nope'"),
        (["optimize", str(TASK), "-g", "scripted:/nonexistent"], "not a folder"),
        (["optimize", str(TASK), "-g", f"scripted:{SCRIPT}", "--strategy", "annealing"], "unknown strategy"),
        (["optimize", str(TASK), "-g", f"scripted:{SCRIPT}", "--time-limit", "soon"], "--time-limit"),
        (["optimize", str(tmp_path / "missing.py"), "-g", f"scripted:{SCRIPT}"], "missing.py"),
        (["show", "nope", "--db", str(tmp_path / "none.db")], "no such store"),
    ]
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[budget]\ncandidatez = 3\n")
    cases.append((["optimize", str(TASK), "-g", f"scripted:{SCRIPT}", "--config", str(bad_config)],
                  "unknown setting 'candidatez'"))
    for args, message in cases:
        code, _, err = finish(kernelwright(*args, "--db", str(tmp_path / "x.db")) if args[0] == "optimize"
                              else kernelwright(*args))
        assert code == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)


def _evaluations(db: Path) -> dict[str, float]:
    """candidate id -> when its evaluation was recorded (read as another process would)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return dict(connection.execute("SELECT candidate_id, created_at FROM evaluations").fetchall())
    except sqlite3.OperationalError:  # the tables are not made yet
        return {}


def test_ctrl_c_stops_cleanly_keeps_everything_and_the_same_command_continues(tmp_path: Path) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    process = kernelwright(*optimize_args(db, out), start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None and len(_evaluations(db)) < 1:
        time.sleep(0.2)
    before = _evaluations(db)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    code, _, err = finish(process, timeout=120)
    assert code == 130, err
    assert "interrupted; everything so far is in" in err and "Traceback" not in err
    with Store(db) as store:
        (record,) = store.list_runs()
        assert record.status == "interrupted"
        kept = _evaluations(db)
        assert set(before) <= set(kept) and all(kept[c] == before[c] for c in before)
    with sqlite3.connect(db) as connection:
        statuses = {status for (status,) in connection.execute("SELECT status FROM evaluations")}
    # Only finished evaluations are recorded: none is a worker cut short by the interruption.
    assert statuses <= {"static_rejected", "compile_error", "passed", "incorrect"}
    assert (out / "report.html").exists() and (out / "best.py").exists()

    code, stdout, err = finish(kernelwright(*optimize_args(db, out)))
    assert code == 0, err
    assert f"continuing run {record.id}" in stdout
    assert len(_evaluations(db)) == 4


def test_when_nothing_passes_the_baselines_are_measured_and_the_reference_is_the_answer(tmp_path: Path) -> None:
    failing = tmp_path / "failing"
    failing.mkdir()
    for name in ("00_syntax_error.py", "01_compile_error.py"):
        (failing / name).write_text((SCRIPT / name).read_text())
    code, stdout, err = finish(kernelwright("optimize", str(TASK), "--generator", f"scripted:{failing}",
                                            "--config", str(QUICK), "--db", str(tmp_path / "runs.db"),
                                            "--out", str(tmp_path / "out")))
    assert code == 0, err
    answer = json.loads((tmp_path / "out" / "run.json").read_text())["answer"]
    assert answer["kind"] == "eager" and answer["time_ms"] > 0  # measured, not assumed
    assert answer["note"].startswith("no candidate passed")
    assert "class ModelNew(Model)" in (tmp_path / "out" / "best.py").read_text()
