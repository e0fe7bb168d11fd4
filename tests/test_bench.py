"""`kernelwright bench` and `report --compare`: the runner on a fake evaluator (fast), the results read
back from the store, the reports, and a real bench of tiny CPU tasks interrupted with Ctrl-C and resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.bench.metrics import suite_metrics
from kernelwright.bench.results import BenchResult, ResultsError, TaskResult, load_results, run_result
from kernelwright.bench.runner import run_bench
from kernelwright.bench.suites import load_suite
from kernelwright.cli import app
from kernelwright.config import Config
from kernelwright.generate.scripted import ScriptedGenerator
from kernelwright.paths import CACHE_ENV
from kernelwright.report.bench import render_bench_html, render_compare_html, write_compare_report
from kernelwright.store import NodeRecord, RunRecord, Store
from kernelwright.task import TaskError, load_task
from private_cache import seed_ceilings
from search_fakes import FakeEvaluations, fake_source

ROOT = Path(__file__).parent
TASKS = ROOT / "fixtures" / "tasks"
CANDIDATES = ROOT / "fixtures" / "candidates"
QUICK = ROOT / "fixtures" / "runs" / "cpu_quick.toml"
BROKEN_TASK = '''"""A reference that cannot run: the bench records it and goes on."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        raise RuntimeError("this reference is broken")


def get_inputs():
    return [torch.randn(4, 4)]


def get_init_inputs():
    return []
'''


def make_suite(folder: Path, names: tuple[str, ...] = ("gelu", "scale_bias", "softmax"), broken: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.py").write_text((TASKS / f"{name}.py").read_text())
    if broken:
        (folder / "broken.py").write_text(BROKEN_TASK)
    return folder


def make_script(folder: Path, fates: list[tuple[str, str, float | None]]) -> Path:
    """Fake candidates (name, status, ms), proposed in this order to every task."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, (name, status, ms) in enumerate(fates):
        (folder / f"{index:02d}_{name}.py").write_text(fake_source(name, status, ms))
    return folder


class InterruptAfter(FakeEvaluations):
    """Ctrl-C (a KeyboardInterrupt) in the middle of the evaluation that follows `count` others."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    async def evaluate(self, task, candidate):  # noqa: ANN001, ANN201
        if len(self.calls) >= self.count:
            raise KeyboardInterrupt
        return await super().evaluate(task, candidate)


class BrokenTaskEvaluations(FakeEvaluations):
    """The evaluator's answer to a task whose reference fails: a TaskError, whatever the candidate."""

    async def evaluate(self, task, candidate):  # noqa: ANN001, ANN201
        if task.name == "broken":
            raise TaskError(f"{task.path}: Model.forward raised RuntimeError: this reference is broken")
        return await super().evaluate(task, candidate)


FATES = [("slow", "passed", 2.0), ("bad", "compile_error", None), ("fast", "passed", 0.5)]


def fake_config(script: Path, budget: int = 3) -> Config:
    config = Config(generator=f"scripted:{script}")
    config.budget.candidates = budget
    return config


def test_an_interrupted_bench_continues_where_it_stopped(tmp_path: Path) -> None:
    suite = load_suite(str(make_suite(tmp_path / "suite")))
    script = make_script(tmp_path / "script", FATES)
    config, out = fake_config(script), tmp_path / "out"
    with Store(tmp_path / "b.db") as store:
        first = InterruptAfter(4)  # gelu's 3 candidates, then Ctrl-C in scale_bias's second
        with pytest.raises(KeyboardInterrupt):
            run_bench(suite, config, store, out, generator=ScriptedGenerator(str(script)), evaluations=first)
        (bench,) = store.list_benches()
        assert bench.status == "interrupted"
        rows = store.bench_tasks(bench.id)
        assert [r.task_key for r in rows] == ["gelu", "scale_bias", "softmax"]
        assert store.get_run(rows[0].run_id).status == "finished"
        assert store.get_run(rows[1].run_id).status == "interrupted" and rows[2].run_id is None
        partial = json.loads((out / "bench.json").read_text())  # written on the way out
        assert [t["verdict"] for t in partial["tasks"]] == ["passed", "passed", "not_run"]
        assert partial["status"] == "interrupted"

        second = FakeEvaluations()
        outcome = run_bench(suite, config, store, out, generator=ScriptedGenerator(str(script)), evaluations=second)
        assert outcome.resumed and outcome.result.id == bench.id and outcome.result.status == "finished"
        # gelu was skipped; scale_bias went on from its first candidate's verdict; softmax ran whole.
        assert second.calls == ["01_bad", "02_fast", "00_slow", "01_bad", "02_fast"]
        after = store.bench_tasks(bench.id)
        assert after[0].run_id == rows[0].run_id and after[1].run_id == rows[1].run_id  # the same runs
        assert [store.get_run(r.run_id).status for r in after] == ["finished"] * 3
        assert len(store.nodes(rows[1].run_id)) == 3

    result = outcome.result
    assert [t.verdict for t in result.tasks] == ["passed"] * 3
    gelu = result.tasks[0]
    assert (gelu.best, gelu.time_ms, gelu.counts) == ("02_fast", 0.5, {"passed": 2, "compile_error": 1})
    assert gelu.speedup == pytest.approx({"eager": 2.0, "compile": 1.6})
    assert gelu.answer == "candidate" and gelu.answer_speedup == pytest.approx({"eager": 2.0, "compile": 1.6})
    assert result.metrics["compile_rate"] == pytest.approx(6 / 9)
    assert result.metrics["pass_at_k"]["1"] == pytest.approx(2 / 3)
    assert result.metrics["fast_p"]["eager"]["1.5"] == 1.0 and result.metrics["fast_p"]["eager"]["2"] == 0.0
    assert load_results(out / "bench.json") == result  # bench.json is the same data
    assert (out / "runs" / "gelu" / "best.py").exists() and (out / "runs" / "softmax" / "report.html").exists()


def test_a_broken_task_is_recorded_not_scored_and_the_bench_goes_on(tmp_path: Path) -> None:
    suite = load_suite(str(make_suite(tmp_path / "suite", ("gelu",), broken=True)))
    script = make_script(tmp_path / "script", FATES[:1])
    with Store(tmp_path / "b.db") as store:
        evaluations = BrokenTaskEvaluations()
        outcome = run_bench(suite, fake_config(script, 1), store, tmp_path / "out",
                            generator=ScriptedGenerator(str(script)), evaluations=evaluations)
        broken, gelu = outcome.result.tasks
        assert broken.key == "broken" and broken.verdict == "task_error" and "this reference is broken" in broken.error
        assert gelu.verdict == "passed" and evaluations.calls == ["00_slow"]
        assert outcome.result.metrics["task_errors"] == 1 and outcome.result.metrics["correctness_rate"] == 1.0
        # Done: the same command starts a new bench (as optimize starts a new run), reusing every verdict.
        again = run_bench(suite, fake_config(script, 1), store, tmp_path / "out2",
                          generator=ScriptedGenerator(str(script)), evaluations=evaluations)
        assert not again.resumed and again.result.id != outcome.result.id and evaluations.calls == ["00_slow"]


def test_other_settings_are_another_bench(tmp_path: Path) -> None:
    suite = load_suite(str(make_suite(tmp_path / "suite", ("gelu",))))
    script = make_script(tmp_path / "script", FATES)
    with Store(tmp_path / "b.db") as store:
        with pytest.raises(KeyboardInterrupt):
            run_bench(suite, fake_config(script, 3), store, tmp_path / "out",
                      generator=ScriptedGenerator(str(script)), evaluations=InterruptAfter(1))
        other = run_bench(suite, fake_config(script, 2), store, tmp_path / "out",
                          generator=ScriptedGenerator(str(script)), evaluations=FakeEvaluations())
        assert not other.resumed and len(store.list_benches()) == 2
        # A filter that picks other tasks is another bench too.
        more = load_suite(str(make_suite(tmp_path / "suite", ("scale_bias",))), "scale_*")
        assert not run_bench(more, fake_config(script, 3), store, tmp_path / "out3",
                             generator=ScriptedGenerator(str(script)), evaluations=FakeEvaluations()).resumed


def test_a_store_from_before_benches_gains_them_and_keeps_its_runs(tmp_path: Path) -> None:
    from kernelwright.store import MIGRATIONS

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # a store as the first schema made it, with one run
        connection.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        connection.execute("INSERT INTO runs (id, key, status) VALUES ('r0', 'k', 'finished')")
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) and store.list_benches() == []
        assert store.get_run("r0").status == "finished"


def test_a_bench_and_its_task_list_are_stored_together_or_not_at_all(tmp_path: Path) -> None:
    from kernelwright.store import BenchRecord, BenchTaskRecord, StoreError

    with Store(tmp_path / "s.db") as store:
        rows = [BenchTaskRecord("b1", seq, "same", "t", "/t.py", 0) for seq in (0, 0)]  # a repeated seq fails
        with pytest.raises(sqlite3.IntegrityError):
            store.create_bench(BenchRecord(id="b1", key="k", suite="s", task_filter=None, config={}), rows)
        assert store.list_benches() == []
        store.create_bench(BenchRecord(id="b1", key="k", suite="s", task_filter=None, config={}), rows[:1])
        store.link_bench_task("b1", 0, "r9")
        assert store.bench_tasks("b1")[0].run_id == "r9" and store.get_bench("b").id == "b1"
        assert store.find_resumable_bench("k").id == "b1"
        store.update_bench("b1", status="finished")
        assert store.find_resumable_bench("k") is None
        with pytest.raises(StoreError, match="no task 5 in bench"):
            store.fail_bench_task("b1", 5, "nope")
        with pytest.raises(StoreError, match="no bench 'zz'"):
            store.get_bench("zz")


def verdict(status: str, ms: float | None = None, **extra) -> dict:  # noqa: ANN003
    out = {"status": status, "reason": f"{status} because", "speedup": {}, "baselines": {}, **extra}
    if ms is not None:
        out.update(time={"median_ms": ms, "iqr_ms": 0.0, "runs": 10},
                   baselines={"eager": {"median_ms": 1.0, "iqr_ms": 0, "runs": 10}},
                   speedup={"eager": 1.0 / ms}, speed_of_light={"fraction": 0.25 * 0.5 / ms})
    return out


def test_task_results_read_every_verdict_of_the_run(tmp_path: Path) -> None:
    """Verdicts written as the evaluator writes them; the task's numbers as the bench reads them."""
    variant_trial = "shape variant {'batch_size': 3}, seed 0, inputs from task's get_inputs()"
    verdicts = [
        ("a", verdict("incorrect", details={"trial": variant_trial})),  # right on the task's shapes only
        ("b", verdict("incorrect", details={"trial": "task shapes, seed 1, inputs from normal(mean=0.5)"})),
        ("c", verdict("passed", 0.5, correctness={"variants": 2})),
        ("d", verdict("passed", 0.25, correctness={"variants": 2})),
        ("e", verdict("compile_error")),
    ]
    with Store(tmp_path / "s.db") as store:
        store.create_run(RunRecord(id="r1", key="k", task_id="t1", task_name="gelu", task_path="/x/gelu.py",
                                   strategy="refine", generator="fake", seed=0,
                                   config={"eval": {"baselines": ["eager"]}},
                                   status="finished", elapsed_s=12.0,
                                   answer={"kind": "candidate", "time_ms": 0.25, "baselines_ms": {"eager": 1.0}}))
        for seq, (name, v) in enumerate(verdicts):
            store.put_source(name, f"# {name}")
            store.record_node(NodeRecord("r1", seq, name, seq, name, [], "fake", "draft", None, {}, "ek"))
            store.record_evaluation(name, "t1", "ek", v, seconds=2.0)
        result = run_result(store, "r1")
    (task,) = result.tasks
    assert result.kind == "run" and task.key == "gelu" and task.verdict == "passed"
    assert task.best == "d" and task.time_ms == 0.25 and task.speedup == {"eager": 4.0}
    assert task.sol_fraction == pytest.approx(0.5) and task.variants == 1
    assert (task.variant_passed, task.variant_reached) == (2, 3)  # a (variant mismatch), c, d; not b
    assert task.device_s == pytest.approx(10.0) and task.wall_s == 12.0
    assert task.counts == {"incorrect": 2, "passed": 2, "compile_error": 1}
    assert task.answer == "candidate" and task.answer_speedup == {"eager": 4.0}
    assert result.metrics["variant_pass_rate"] == pytest.approx(2 / 3)


def test_without_a_pass_the_verdict_is_the_furthest_failure(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.create_run(RunRecord(id="r2", key="k", task_id="t2", task_name="softmax", task_path="/x/softmax.py",
                                   strategy="refine", generator="fake", seed=0, config={}, status="finished",
                                   answer={"kind": "eager", "time_ms": 2.0, "baselines_ms": {"eager": 2.0}}))
        for seq, status in enumerate(["compile_error", "incorrect", "runtime_error", "incorrect"]):
            store.put_source(f"c{seq}", "#")
            store.record_node(NodeRecord("r2", seq, f"c{seq}", seq, f"cand{seq}", [], "f", "draft", None, {}, "ek"))
            store.record_evaluation(f"c{seq}", "t2", "ek", verdict(status), 1.0)
        (task,) = run_result(store, "r2").tasks
    assert task.verdict == "incorrect" and task.reason == "cand1: incorrect because"  # the first that got furthest
    assert task.best is None and task.speedup == {} and task.baselines_ms == {"eager": 2.0}
    assert task.answer == "eager" and task.answer_speedup == {"eager": 1.0}


def sample_result(ident: str, speedups: dict[str, float], generator: str = "expert") -> BenchResult:
    tasks = [TaskResult(key=key, task_id=f"id-{key}", task_path=f"/s/{key}.py", verdict="passed",
                        counts={"passed": 1, "incorrect": 1}, speedup={"eager": s, "compile": s / 2},
                        baselines_ms={"eager": 1.0, "compile": 0.5}, sol_fraction=s / 10, best="k",
                        time_ms=1.0 / s, wall_s=3.0, device_s=2.0) for key, s in speedups.items()]
    tasks.append(TaskResult(key="<b>&broken", task_id="id-x", task_path="/s/x.py", verdict="task_error",
                            error="x.py: </td><script>alert(1)</script>", reason="x.py: </td><script>"))
    return BenchResult(id=ident, kind="bench", suite="builtin", task_filter=None, generator=generator,
                       strategy="refine", budget={"candidates": 2}, baselines=["eager", "compile"],
                       status="finished", created_at=1.7e9, finished_at=1.7e9 + 60,
                       environment={"device_name": "Test GPU", "torch": "2.11"}, tasks=tasks,
                       metrics=suite_metrics(tasks, ["eager", "compile"]))


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(chunk) for chunk in re.findall(r"<svg.*?</svg>", html, re.S)]


def test_bench_html_has_tables_plots_and_nothing_from_outside() -> None:
    result = sample_result("b1", {"gelu": 2.0, "softmax": 0.5})
    html = render_bench_html(result)
    charts = svgs(html)
    assert len(charts) == 3  # speedup per baseline, fraction of speed of light, cost
    speedup_bars = [e for e in charts[0].iter("rect") if e.find("title") is not None]
    assert len(speedup_bars) == 4  # 2 passed tasks x 2 baselines; the broken task has no bar
    assert "://" not in html and "<script>alert" not in html and "&lt;b&gt;&amp;broken" in html
    rows = re.findall(r'<tr class="status-', html)
    assert len(rows) == 3
    assert "fast_1.5 vs torch.compile" in html and "pass@1" in html and "Test GPU" in html
    assert 'href="runs/gelu/report.html"' not in html  # no run id, no link


def test_compare_html_puts_two_results_side_by_side(tmp_path: Path) -> None:
    a = sample_result("aaa", {"gelu": 2.0, "softmax": 0.5})
    b = sample_result("bbb", {"gelu": 4.0, "norm": 1.5}, generator="llm")
    b.tasks[0].task_id = "id-gelu-changed"
    html = render_compare_html(a, b)
    assert "bench aaa (expert, refine)" in html and "bench bbb (llm, refine)" in html
    assert len(svgs(html)) == 2  # speedup vs eager, vs torch.compile
    assert "://" not in html and "<script>alert" not in html
    body = html[html.index('<section id="tasks">'):]
    assert [re.sub(r"<.*?>", "", k) for k in re.findall(r"<td(?: class=\"changed\")?><code>(.*?)</code>", body)] == \
        ["gelu", "softmax", "&lt;b&gt;&amp;broken", "norm"]  # A's order, then B's own
    assert '<td class="changed"><code>gelu</code>' in body
    # fast_2 vs eager: A has 2.0x and 0.5x (neither above 2), B 4.0x and 1.5x
    assert re.search(r"<td>fast_2 vs eager</td><td class=\"num\">0.0%</td><td class=\"num\">50.0%</td>"
                     r"<td class=\"num\">\+50.0 pp</td>", html)
    path = write_compare_report(a, b, tmp_path / "deep" / "c.html")
    assert path.read_text() == html


def test_bench_json_round_trips_and_bad_files_are_one_line(tmp_path: Path) -> None:
    result = sample_result("b1", {"gelu": 2.0})
    good = tmp_path / "bench.json"
    good.write_text(result.to_json())
    assert load_results(good) == result
    cases = {"missing.json": None, "notjson.json": "{", "other.json": '{"format": "something/1"}',
             "list.json": "[1]", "malformed.json": '{"format": "kernelwright-bench/1", "id": "x"}'}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ResultsError) as raised:
            load_results(tmp_path / name)
        assert name in str(raised.value) and "\n" not in str(raised.value)


def test_report_compare_reads_files_folders_and_ids(tmp_path: Path) -> None:
    suite = load_suite(str(make_suite(tmp_path / "suite", ("gelu", "softmax"))))
    script = make_script(tmp_path / "script", FATES)
    db = tmp_path / "b.db"
    with Store(db) as store:
        bench = run_bench(suite, fake_config(script, 2), store, tmp_path / "one",
                          generator=ScriptedGenerator(str(script)), evaluations=FakeEvaluations()).result
        run_id = bench.tasks[1].run_id
    runner = CliRunner()
    for a, b in ((str(tmp_path / "one" / "bench.json"), bench.id[:5]), (str(tmp_path / "one"), run_id)):
        out = tmp_path / f"compare-{b}.html"
        result = runner.invoke(app, ["report", "--compare", a, b, "--db", str(db), "--out", str(out)],
                               env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "fast_1 vs eager" in result.stdout and f"wrote {out}" in result.stdout
        html = out.read_text()
        assert f"bench {bench.id}" in html and ("run " + run_id in html) == (b == run_id)
    bad = runner.invoke(app, ["report", "--compare", str(tmp_path / "one"), "nope", "--db", str(db)])
    assert bad.exit_code == 2 and "nope: no such bench.json, bench or run" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["bench", "nowhere"], "nowhere: no such suite"),
    (["bench", "builtin", "--tasks", "nothing_*"], "'nothing_*' names no task"),
    (["bench", "builtin", "-g", "nope"], "unknown generator 'nope'"),
    (["bench", "builtin", "--strategy", "annealing"], "unknown strategy"),
    (["bench", "builtin", "--time-limit", "soon"], "--time-limit"),
    (["report", "--compare", "a.json", "b.json", "--db", "/nonexistent/x.db"], "a.json: no such bench.json"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    extra = ["--db", str(tmp_path / "x.db")] if args[0] == "bench" else []
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ---- the real thing: a bench of tiny CPU tasks with the real evaluator, Ctrl-C, the same command again ----


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache with the CPU's ceilings seeded, so that no evaluation spends time measuring them."""
    root = tmp_path_factory.mktemp("kernelwright-cache")
    seed_ceilings(root)
    return root


def kernelwright(cache: Path, *args: str) -> subprocess.Popen:
    # SIGINT's default action restored in the child: a pytest-xdist worker ignores SIGINT, and an ignored
    # SIGINT is inherited across exec, where Python then installs no KeyboardInterrupt handler.
    return subprocess.Popen([sys.executable, "-m", "kernelwright", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            env={**os.environ, "COLUMNS": "200", CACHE_ENV: str(cache)})


def evaluations_of(db: Path, task_id: str) -> dict[str, float]:
    """candidate id -> when its evaluation on this task was recorded (read as another process would)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return dict(connection.execute("SELECT candidate_id, created_at FROM evaluations WHERE task_id = ?",
                                           (task_id,)).fetchall())
    except sqlite3.OperationalError:  # the tables are not made yet
        return {}


@pytest.mark.timeout(900)  # two sessions of real CPU evaluations: minutes on a busy 2-core machine
def test_a_cpu_bench_interrupted_with_ctrl_c_continues_with_the_same_command(tmp_path: Path,
                                                                            cache_root: Path) -> None:
    suite = make_suite(tmp_path / "suite", ("gelu", "scale_bias"), broken=True)
    script = tmp_path / "script"
    script.mkdir()
    compile_error = ROOT / "fixtures" / "runs" / "gelu_cpu" / "01_compile_error.py"
    (script / "00_compile_error.py").write_text(compile_error.read_text())
    (script / "01_cpu_gelu.py").write_text((CANDIDATES / "cpu_gelu.py").read_text())
    (script / "02_cpu_scale_bias.py").write_text((CANDIDATES / "cpu_scale_bias.py").read_text())
    db, out = tmp_path / "bench.db", tmp_path / "out"
    args = ["bench", str(suite), "--generator", f"scripted:{script}", "--config", str(QUICK), "--budget", "3",
            "--db", str(db), "--out", str(out)]
    scale_bias = load_task(suite / "scale_bias.py").id

    process = kernelwright(cache_root, *args)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not evaluations_of(db, scale_bias):
        time.sleep(0.2)
    before = evaluations_of(db, scale_bias)
    assert process.poll() is None and 1 <= len(before) < 3, "the bench was not caught in its last task"
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out_text, err = process.communicate(timeout=120)
    assert process.returncode == 130, out_text + err
    assert "interrupted; everything so far is in" in err and "Traceback" not in err
    partial = json.loads((out / "bench.json").read_text())
    assert partial["status"] == "interrupted"
    assert [t["verdict"] for t in partial["tasks"][:2]] == ["task_error", "passed"]

    process = kernelwright(cache_root, *args)
    out_text, err = process.communicate(timeout=300)
    assert process.returncode == 0, out_text + err
    assert f"continuing bench {partial['id']}" in out_text
    assert "[1/3] broken: done before" in out_text and "[2/3] gelu: done before" in out_text
    assert re.search(r"\[3/3\] scale_bias: continuing run \w+", out_text)
    after = evaluations_of(db, scale_bias)
    assert len(after) == 3 and all(after[c] == t for c, t in before.items())  # nothing lost or repeated

    final = load_results(out / "bench.json")
    broken, gelu, scale = final.tasks
    assert final.status == "finished" and final.id == partial["id"]
    assert broken.verdict == "task_error" and "this reference is broken" in broken.error
    assert gelu.verdict == "passed" and gelu.best == "01_cpu_gelu" and gelu.counts["compile_error"] == 1
    assert scale.verdict == "passed" and scale.best == "02_cpu_scale_bias"
    assert gelu.variant_reached == 1 and gelu.variant_passed == 1  # gelu.py has one shape variant
    assert set(gelu.speedup) == {"eager"} and gelu.device_s > 0 and gelu.wall_s > 0
    m = final.metrics
    assert (m["task_errors"], m["scored_tasks"], m["candidates"]) == (1, 2, 6)
    assert m["correctness_rate"] == 1.0 and m["compile_rate"] == pytest.approx(4 / 6)
    assert m["pass_at_k"]["1"] == pytest.approx(1 / 3)
    assert set(m["fast_p"]) == {"eager"}  # cpu_quick.toml times eager only
    assert f"bench {final.id}: finished" in out_text
    html = (out / "bench.html").read_text()
    assert 'href="runs/scale_bias/report.html"' in html and "://" not in html
    assert (out / "runs" / "scale_bias" / "report.html").exists()
    with Store(db) as store:
        assert store.get_bench(final.id).status == "finished"
        assert all(store.get_run(t.run_id).status == "finished" for t in (gelu, scale))


@pytest.mark.timeout(900)
def test_a_bench_in_two_lanes_runs_tasks_side_by_side_and_ctrl_c_stops_and_continues_both(tmp_path: Path,
                                                                                          cache_root: Path) -> None:
    suite = make_suite(tmp_path / "suite", ("gelu", "scale_bias"))
    script = tmp_path / "script"
    script.mkdir()
    compile_error = ROOT / "fixtures" / "runs" / "gelu_cpu" / "01_compile_error.py"
    (script / "00_compile_error.py").write_text(compile_error.read_text())
    (script / "01_cpu_gelu.py").write_text((CANDIDATES / "cpu_gelu.py").read_text())
    (script / "02_cpu_scale_bias.py").write_text((CANDIDATES / "cpu_scale_bias.py").read_text())
    db, out = tmp_path / "bench.db", tmp_path / "out"
    args = ["bench", str(suite), "--generator", f"scripted:{script}", "--config", str(QUICK), "--budget", "3",
            "--lanes", "2", "--db", str(db), "--out", str(out)]
    ids = {name: load_task(suite / f"{name}.py").id for name in ("gelu", "scale_bias")}

    process = kernelwright(cache_root, *args)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not all(evaluations_of(db, i) for i in ids.values()):
        time.sleep(0.2)
    before = {name: evaluations_of(db, i) for name, i in ids.items()}
    # Side by side: each task has evaluations while the other's run is still short of its budget (one after
    # the other, the second's first evaluation would come after the first's third).
    assert process.poll() is None and all(1 <= len(b) < 3 for b in before.values()), before
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the parent and both lanes (and their workers) get it
    out_text, err = process.communicate(timeout=180)
    assert process.returncode == 130, out_text + err
    assert "interrupted; everything so far is in" in err and "Traceback" not in err
    # What the bench waits for after Ctrl-C, and how long each lane took to stop, are said.
    assert "Ctrl-C: 2 lane(s) recording their runs" in out_text, out_text
    assert re.search(r"lane 0 stopped after [\d.]+ s", out_text) and re.search(r"lane 1 stopped after", out_text)
    assert json.loads((out / "bench.json").read_text())["status"] == "interrupted"

    process = kernelwright(cache_root, *args)
    out_text, err = process.communicate(timeout=300)
    assert process.returncode == 0, out_text + err
    after = {name: evaluations_of(db, i) for name, i in ids.items()}
    for name in ids:  # every evaluation kept, none repeated, the budget filled
        assert len(after[name]) == 3 and all(after[name][c] == t for c, t in before[name].items()), name
    final = load_results(out / "bench.json")
    assert final.status == "finished" and [t.verdict for t in final.tasks] == ["passed", "passed"]
    assert [t.best for t in final.tasks] == ["01_cpu_gelu", "02_cpu_scale_bias"]


# ---- the reports in a real browser ----

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
                 if Path(p).exists()), None)

# Clicks every sortable header twice (ascending, then descending) and checks the column's order each
# time, as the sorting script compares: the page title counts the checks; a disorder throws (a console line).
SORT_CHECK = """<script>
(function () {
  var checked = 0;
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      [1, -1].forEach(function (direction) {
        th.click();
        var values = Array.prototype.map.call(table.tBodies[0].rows, function (row) {
          var cell = row.cells[column];
          if (th.dataset.type !== "num") return cell.textContent.trim().toLowerCase();
          return cell.dataset.v === "" ? null : parseFloat(cell.dataset.v);
        }).filter(function (v) { return v !== null; });
        for (var i = 1; i < values.length; i++) {
          var before = values[i - 1], after = values[i];
          if (direction > 0 ? after < before : before < after) throw new Error("column " + column + " is not sorted");
        }
        checked++;
      });
    });
  });
  document.title = "sorted " + checked;
})();
</script></body>"""


def open_in_chromium(path: Path, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after load, and the console lines Chromium logged (any at all is a failure here:
    the reports log nothing)."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")
def test_reports_open_in_headless_chromium_without_console_errors(tmp_path: Path) -> None:
    a = sample_result("aaa", {"gelu": 2.0, "softmax": 0.5, "norm": 1.2})
    b = sample_result("bbb", {"gelu": 4.0, "norm": 1.5})
    pages = {"bench.html": render_bench_html(a), "compare.html": render_compare_html(a, b)}
    for name, html in pages.items():
        page = tmp_path / name
        page.write_text(html)
        dom, console = open_in_chromium(page, tmp_path / f"profile-{name}")
        assert console == [], console
        assert "<svg" in dom and "sortable" in dom
        checked = tmp_path / f"sorted-{name}"
        checked.write_text(html.replace("</body>", SORT_CHECK))
        dom, console = open_in_chromium(checked, tmp_path / f"profile-sorted-{name}")
        assert console == [], console
        columns = len(re.findall(r"<th[ >]", html[html.index('<table class="sortable">'):]))
        assert f"<title>sorted {2 * columns}</title>" in dom
