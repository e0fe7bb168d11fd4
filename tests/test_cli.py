"""The command line: exit codes 0 passed / 1 not passed / 2 bad input, JSON on stdout, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from private_cache import seed_ceilings
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.paths import CACHE_ENV
from kernelwright.task import load_tasks

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tests" / "fixtures" / "tasks"
CANDIDATES = ROOT / "tests" / "fixtures" / "candidates"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """A private cache, with device ceilings seeded so that no evaluation here spends time measuring them."""
    root = tmp_path_factory.mktemp("kernelwright-cache")
    seed_ceilings(root)
    return root


@pytest.fixture
def cli(cache_root):
    """Invoke the app in-process; the environment (inherited by spawned workers) points at a private cache."""
    runner = CliRunner()

    def invoke(*args: str, columns: int = 200):
        return runner.invoke(app, [str(a) for a in args], env={CACHE_ENV: str(cache_root), "COLUMNS": str(columns)})

    return invoke


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_eval_of_a_correct_kernel_prints_a_passed_verdict_as_json(cache_root):
    """End to end, as a user runs it: a subprocess, JSON alone on stdout, exit code 0."""
    result = subprocess.run(
        [sys.executable, "-m", "kernelwright", "eval", str(TASKS / "gelu.py"), str(CANDIDATES / "cpu_gelu.py"),
         "--json", "--no-compile-baseline", "--seeds", "2"],
        capture_output=True, text=True, timeout=240, env=dict(os.environ, **{CACHE_ENV: str(cache_root)}),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = json.loads(result.stdout)  # nothing but the verdict on stdout
    assert verdict["status"] == "passed"
    assert verdict["task"]["name"] == "gelu"
    assert set(verdict["baselines"]) == {"eager"}  # --no-compile-baseline
    assert verdict["speedup"]["eager"] > 0
    assert verdict["correctness"]["trials"] == 2 * 2 + 1 * 2  # --seeds 2, two distributions, one variant


def test_eval_of_a_static_cheat_exits_1_and_says_why(cli):
    result = cli("eval", TASKS / "gelu.py", CANDIDATES / "timer_patch.py", "--no-compile-baseline")
    assert result.exit_code == 1, result.output
    assert "static_rejected: line 2" in result.stdout
    assert "line 9" in result.stdout and "time.perf_counter" in result.stdout  # later violations listed too


def test_the_human_verdict_names_the_rule(cli):
    result = cli("eval", TASKS / "gelu.py", CANDIDATES / "timer_patch.py", "--no-compile-baseline")
    assert "line 2 [timing-patch]" in result.stdout
    assert "line 9 [timing-patch]" in result.stdout


def test_printing_a_reason_with_brackets_does_not_crash(capsys):
    from kernelwright import cli as cli_module
    from kernelwright.evaluate.verdict import Status, Verdict

    cli_module._print_verdict(Verdict(Status.RUNTIME_ERROR, "run: ValueError: bad [/shape] here"))
    assert "bad [/shape] here" in capsys.readouterr().out


def test_eval_of_a_static_cheat_as_json_exits_1(cli):
    result = cli("eval", TASKS / "gelu.py", CANDIDATES / "try_except_fallback.py", "--json")
    assert result.exit_code == 1, result.output
    verdict = json.loads(result.stdout)
    assert verdict["status"] == "static_rejected"
    assert {v["rule"] for v in verdict["details"]["violations"]} == {"try-except", "torch-compute"}


def test_eval_of_a_missing_task_file_exits_2_with_one_line(cli, tmp_path):
    missing = tmp_path / "absent.py"
    result = cli("eval", missing, CANDIDATES / "cpu_gelu.py")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith(f"error: {missing}: ")
    assert "cannot read" in line and "No such file" in line
    assert result.stdout == ""


def test_eval_of_a_missing_candidate_file_exits_2(cli, tmp_path):
    result = cli("eval", TASKS / "gelu.py", tmp_path / "absent.py")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith("error: ") and "cannot read candidate file" in line


def test_eval_of_a_malformed_task_exits_2_naming_file_and_line(cli, tmp_path):
    task = tmp_path / "bad_meta.py"
    task.write_text((TASKS / "gelu.py").read_text().replace('"shape_variants"', '"shape_variant"'))
    result = cli("eval", task, CANDIDATES / "cpu_gelu.py")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith(f"error: {task}:8: unknown KERNELWRIGHT key(s): shape_variant")


def test_eval_with_an_unknown_device_exits_2(cli):
    result = cli("eval", TASKS / "gelu.py", CANDIDATES / "cpu_gelu.py", "--device", "gpu")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line == "error: --device must be cuda or cpu, got 'gpu'"


def test_tasks_lists_the_fixture_tasks_with_their_ids(cli):
    result = cli("tasks", TASKS)
    assert result.exit_code == 0, result.output
    for task in load_tasks(TASKS):
        assert task.name in result.stdout
        assert task.id in result.stdout


def test_tasks_shows_full_names_and_ids_in_an_80_column_terminal(cli):
    result = cli("tasks", TASKS, columns=80)
    assert result.exit_code == 0, result.output
    for task in load_tasks(TASKS):
        assert task.name in result.stdout and task.id in result.stdout


def test_tasks_on_a_folder_without_tasks_exits_2(cli, tmp_path):
    result = cli("tasks", tmp_path)
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line == f"error: {tmp_path}: no task files (*.py) in this folder"


def test_doctor_exits_0_and_lists_the_cpu_backend(cli):
    result = cli("doctor")
    assert result.exit_code == 0, result.output
    assert "CPU C++" in result.stdout
    assert "Candidates can run here with" in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["eval", "--help"], ["tasks", "--help"]])
def test_help_exits_0(cli, args):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_no_arguments_shows_help_and_the_commands(cli):
    result = cli()
    assert "eval" in result.output and "doctor" in result.output and "tasks" in result.output
