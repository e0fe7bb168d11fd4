"""Search strategies, budgets, dedup and resume, on a fake evaluator (fast and deterministic)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kernelwright.config import Config
from kernelwright.generate import GeneratorError, get_generator
from kernelwright.generate.base import Context
from kernelwright.search import STRATEGIES, get_strategy
from kernelwright.search import answer as answers
from kernelwright.search.bandit import upper_bound
from kernelwright.search.controller import optimize
from kernelwright.search.run import Request, ResumeError, Run
from kernelwright.store import RunRecord, Store
from kernelwright.task import load_task
from search_fakes import COMPILE_MS, EAGER_MS, ClimbingGenerator, FakeEvaluations, RaisingGenerator, fake_source

TASK = load_task(Path(__file__).parent / "fixtures" / "tasks" / "gelu.py")


def script_folder(tmp_path: Path, entries: list[tuple[str, str, float | None]]) -> Path:
    folder = tmp_path / "script"
    folder.mkdir()
    for name, status, time_ms in entries:
        (folder / f"{name}.py").write_text(fake_source(name, status, time_ms))
    return folder


def new_run(store: Store, config: Config, generator, evaluations, run_id: str = "run1") -> Run:  # noqa: ANN001
    record = RunRecord(id=run_id, key=config.run_key(TASK.id), task_id=TASK.id, task_name=TASK.name,
                       task_path=str(TASK.path), strategy=config.strategy, generator=generator.name, seed=config.seed,
                       config=config.to_dict())
    store.create_run(record)
    return Run(record, TASK, generator, evaluations, store, config)


def drive(config: Config, generator, evaluations=None, store=None) -> Run:  # noqa: ANN001
    store = store or Store(":memory:")
    run = new_run(store, config, generator, evaluations or FakeEvaluations())
    strategy = get_strategy(config.strategy)
    strategy.search(run, strategy.Params(**config.strategy_params.get(config.strategy, {})))
    return run


def config_for(strategy: str, budget: int, generator: str = "fake", **stop: object) -> Config:
    config = Config(generator=generator, strategy=strategy)
    config.budget.candidates = budget
    config.stop = dataclasses.replace(config.stop, target_sol=None, **stop)
    return config


SCRIPT = [("a_fails", "compile_error", None), ("b_slow", "passed", 2.0), ("c_wrong", "incorrect", None),
          ("d_best", "passed", 0.25), ("e_ok", "passed", 0.5), ("f_crash", "runtime_error", None)]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_drives_the_scripted_generator_to_the_known_best(strategy: str, tmp_path: Path) -> None:
    generator = get_generator(f"scripted:{script_folder(tmp_path, SCRIPT)}")
    run = drive(config_for(strategy, budget=20), generator)
    assert run.best is not None and run.best.candidate.name == "d_best"
    names = [n.candidate.name for n in run.nodes]
    if strategy == "best-of-n":  # stops at the first batch holding a candidate faster than both baselines
        assert names == ["a_fails", "b_slow", "c_wrong", "d_best"] and run.stop_reason.startswith("target: d_best")
    else:  # each once, in script order, until the script runs out
        assert names == [name for name, _, _ in SCRIPT]
        assert run.stop_reason.startswith("the generator brought nothing new")


@pytest.mark.parametrize("strategy", ["refine", "evolve", "tree", "bandit"])
def test_strategies_that_build_on_parents_climb(strategy: str) -> None:
    """Children of a level-k parent are level k+1 and faster: a strategy that exploits must climb."""
    run = drive(config_for(strategy, budget=16, generator="climbing"), ClimbingGenerator())
    assert len(run.nodes) == 16
    assert run.best.time_ms <= 1 / 3  # level 2 or more: at least two improving generations
    parents = {n.id for n in run.nodes}
    assert all(set(n.parents) <= parents for n in run.nodes)  # lineage only points at candidates of the run


def test_evolve_uses_islands_crossover_and_migration() -> None:
    config = config_for("evolve", budget=30, generator="climbing")
    config.strategy_params["evolve"] = {"islands": 2, "crossover": 0.5, "migration_interval": 2}
    run = drive(config, ClimbingGenerator())
    intents = {n.intent for n in run.nodes}
    assert {"draft", "mutate", "crossover"} <= intents
    assert any(len(n.parents) == 2 for n in run.nodes if n.intent == "crossover")


def test_tree_prunes_failures_and_ends_when_every_branch_is_pruned(tmp_path: Path) -> None:
    failing = [(f"f{i}", "incorrect", None) for i in range(30)]
    generator = get_generator(f"scripted:{script_folder(tmp_path, failing)}")
    config = config_for("tree", budget=30)
    config.strategy_params["tree"] = {"branching": 2, "restarts": 1}
    run = drive(config, generator)
    assert len(run.nodes) == 4  # two root expansions of two drafts, all pruned
    assert run.stop_reason == "tree search: every branch is pruned"
    assert all(n.intent == "draft" for n in run.nodes)


def test_bandit_prefers_the_technique_that_pays() -> None:
    class TilingPays:
        name = "tiling-pays"

        def propose(self, task, context: Context):  # noqa: ANN001, ANN201
            from kernelwright.candidate import Candidate

            best = context.best.verdict["time"]["median_ms"] if context.best else 1.0
            time_ms = best * (0.7 if context.technique == "tiling" else 1.2)
            return [Candidate(fake_source(f"{context.technique}-{context.seed}", "passed", time_ms), "x")]

    run = drive(config_for("bandit", budget=40), TilingPays())
    techniques = [n.technique for n in run.nodes]
    assert techniques.count("tiling") > len(techniques) / 3
    assert upper_bound(0, 0.0, 5, 1.4) == float("inf")


def test_best_of_n_stops_at_the_first_candidate_that_meets_the_target(tmp_path: Path) -> None:
    script = [("a", "passed", 2.0), ("b", "passed", 0.7), ("c", "passed", 0.1), ("d", "passed", 0.5),
              ("e", "passed", 0.05)]
    config = config_for("best-of-n", budget=20)
    config.strategy_params["best-of-n"] = {"parallel": 2, "target_speedup": 1.5}
    run = drive(config, get_generator(f"scripted:{script_folder(tmp_path, script)}"))
    # vs the faster baseline (compile, 0.8 ms): b is 1.14x, c is 8x: the batch (c, d) holds the first hit.
    assert [n.candidate.name for n in run.nodes] == ["a", "b", "c", "d"]
    assert run.stop_reason.startswith("target: c is 8.00x")


def test_budget_is_exhausted_exactly(tmp_path: Path) -> None:
    script = [(f"p{i}", "passed", 1.0 - i / 20) for i in range(10)]
    config = config_for("best-of-n", budget=3)
    config.strategy_params["best-of-n"] = {"parallel": 2, "target_speedup": None}
    evaluations = FakeEvaluations()
    run = drive(config, get_generator(f"scripted:{script_folder(tmp_path, script)}"), evaluations)
    assert len(run.nodes) == 3 and len(evaluations.calls) == 3
    assert run.stop_reason == "budget: 3 candidates evaluated"
    assert run.ask([Request("draft")]) == [[]]  # a finished run asks nothing more


def test_plateau_and_speed_of_light_targets_stop_the_run(tmp_path: Path) -> None:
    flat = [(f"p{i}", "passed", 1.0) for i in range(10)]
    generator = get_generator(f"scripted:{script_folder(tmp_path, flat)}")
    run = drive(config_for("refine", budget=10, plateau=3), generator)
    assert len(run.nodes) == 4 and run.stop_reason.startswith("plateau: 3 candidates")

    config = config_for("refine", budget=10)
    config.stop.target_sol = 0.5  # the fake floor is 0.05 ms: 0.1 ms is 50% of the speed of light
    (tmp_path / "fast").mkdir()
    for i, t in enumerate([0.5, 0.1, 0.09]):
        (tmp_path / "fast" / f"f{i}.py").write_text(fake_source(f"f{i}", "passed", t))
    run = drive(config, get_generator(f"scripted:{tmp_path / 'fast'}"))
    assert len(run.nodes) == 2 and run.stop_reason.startswith("target: the best runs at 50%")


def test_repeated_sources_are_evaluated_once_in_a_run_and_across_runs(tmp_path: Path) -> None:
    folder = script_folder(tmp_path, [("a", "passed", 0.5), ("b", "passed", 0.4)])
    (folder / "c_same_as_a.py").write_text((folder / "a.py").read_text())
    store = Store(tmp_path / "db.sqlite")
    first = FakeEvaluations()
    run = drive(config_for("refine", budget=10), get_generator(f"scripted:{folder}"), first, store)
    assert first.calls == ["a", "b"] and len(run.nodes) == 2 and run.counts["duplicate"] == 1

    second = FakeEvaluations()
    config = config_for("refine", budget=10)
    config.seed = 1  # another run of the same task on the same evaluator: every verdict is stored already
    rerun = new_run(store, config, get_generator(f"scripted:{folder}"), second, run_id="run2")
    get_strategy("refine").search(rerun, get_strategy("refine").Params())
    assert second.calls == [] and [n.status for n in rerun.nodes] == ["passed", "passed"]
    assert store.evaluation_count(TASK.id) == 2


def test_a_generator_that_raises_is_recorded_and_ends_the_run(tmp_path: Path) -> None:
    store = Store(":memory:")
    run = drive(config_for("refine", budget=10), RaisingGenerator(), store=store)
    assert run.nodes == [] and run.counts["generator_error"] == 3
    assert "the model endpoint is on fire" in run.stop_reason
    assert all("RuntimeError" in p.error for p in store.proposals("run1"))


def test_malformed_proposals_are_failures_not_crashes(tmp_path: Path) -> None:
    class ReturnsText:
        name = "text"

        def propose(self, task, context):  # noqa: ANN001, ANN201
            return ["class ModelNew: pass"]  # not Candidate objects

    run = drive(config_for("refine", budget=5), ReturnsText())
    assert run.nodes == [] and "not a list of Candidate" in run.generator_errors[0]


def test_async_generators_are_awaited_concurrently(tmp_path: Path) -> None:
    import asyncio

    class Slow:
        name = "slow"
        running = peak = 0

        async def propose(self, task, context):  # noqa: ANN001, ANN201
            from kernelwright.candidate import Candidate

            Slow.running += 1
            Slow.peak = max(Slow.peak, Slow.running)
            await asyncio.sleep(0.05)
            Slow.running -= 1
            return [Candidate(fake_source(f"s{context.seed}", "passed", 1.0), f"s{context.ordinal}")]

    config = config_for("best-of-n", budget=8)
    config.strategy_params["best-of-n"] = {"parallel": 4, "target_speedup": None}
    run = drive(config, Slow())
    assert len(run.nodes) == 8 and Slow.peak == 4


def test_never_slower_answer() -> None:
    class Slow:
        name = "slow"

        def propose(self, task, context):  # noqa: ANN001, ANN201
            from kernelwright.candidate import Candidate

            return [Candidate(fake_source(f"s{context.seed}", "passed", 3.0), "s")]

    run = drive(config_for("refine", budget=2), Slow())
    answer = answers.choose(run.best, {})
    assert answer.kind == "compile" and answer.time_ms == COMPILE_MS
    assert "is not faster" in answer.note
    source = answers.source(answer, TASK, run.best)
    assert "torch.compile(Model(*args))" in source and "class Model(" in source
    assert answers.choose(None, {"eager": EAGER_MS}).kind == "eager"
    assert "class ModelNew(Model)" in answers.source(answers.choose(None, {"eager": 1.0}), TASK, None)


def resumable_config() -> Config:
    config = config_for("evolve", budget=14, generator="climbing")
    config.strategy_params["evolve"] = {"islands": 2}
    config.seed = 7
    return config


def test_resume_after_a_crash_repeats_nothing_and_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    config = resumable_config()
    whole = FakeEvaluations()
    reference_run = drive(config, ClimbingGenerator(), whole)

    store = Store(tmp_path / "db.sqlite")
    crashing = FakeEvaluations(fail_after=6)
    with pytest.raises(SystemExit):
        optimize(TASK, config, store, tmp_path / "out", evaluations=crashing, generator=ClimbingGenerator())
    assert store.list_runs()[0].status == "failed" and store.evaluation_count() == 6

    resumed = FakeEvaluations()
    outcome = optimize(TASK, config, store, tmp_path / "out", evaluations=resumed, generator=ClimbingGenerator())
    assert outcome.resumed and outcome.record.status == "finished"
    assert len(crashing.calls) + len(resumed.calls) == len(whole.calls)  # nothing evaluated twice, nothing lost
    assert set(crashing.calls).isdisjoint(resumed.calls)
    stored = store.nodes(outcome.record.id)
    assert [n.candidate_id for n in stored] == [n.id for n in reference_run.nodes]
    assert (tmp_path / "out" / "best.py").read_text() == reference_run.best.candidate.source


def test_resume_refuses_a_run_that_asked_differently(tmp_path: Path) -> None:
    config = config_for("refine", budget=4, generator="climbing")
    store = Store(":memory:")
    run = new_run(store, config, ClimbingGenerator(), FakeEvaluations())
    run.ask([Request("draft")])
    again = Run(store.get_run("run1"), TASK, ClimbingGenerator(), FakeEvaluations(), store, config)
    with pytest.raises(ResumeError, match="asked differently at call 0"):
        again.ask([Request("draft", technique="tiling")])


def test_unknown_generators_and_bad_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="unknown generator 'nope'; available: .*scripted"):
        get_generator("nope")
    with pytest.raises(GeneratorError, match="needs a folder"):
        get_generator("scripted")
    with pytest.raises(GeneratorError, match="not a folder"):
        get_generator(f"scripted:{tmp_path / 'missing'}")


def test_token_cost_and_time_budgets_stop_the_run(tmp_path: Path) -> None:
    from kernelwright.candidate import Candidate
    from kernelwright.store import LLMCall

    store = Store(":memory:")

    class Billing:
        """Records one LLM call per proposal in the store, as the LLM generator does."""

        name = "billing"

        def propose(self, task, context):  # noqa: ANN001, ANN201
            store.record_llm_call(LLMCall(context.run_id, "coder", "test", "m", "prompt", "reply",
                                          prompt_tokens=800, completion_tokens=200, cost=0.5))
            return [Candidate(fake_source(f"b{context.seed}", "passed", 1.0), f"b{context.ordinal}")]

    config = config_for("refine", budget=20)
    config.budget.max_tokens = 2500
    run = drive(config, Billing(), store=store)
    assert len(run.nodes) == 3 and run.stop_reason == "token budget: 3000 of 2500 tokens used"

    config = config_for("refine", budget=20)
    config.budget.max_cost = 1.0
    store = Store(":memory:")
    run = drive(config, Billing(), store=store)
    assert len(run.nodes) == 2 and run.stop_reason == "cost budget: $1.00 of $1.00 spent"

    class Slow:
        name = "slow"

        def propose(self, task, context):  # noqa: ANN001, ANN201
            import time

            time.sleep(0.3)
            return [Candidate(fake_source(f"s{context.seed}", "passed", 1.0), "s")]

    config = config_for("refine", budget=20)
    config.budget.time_limit_s = 0.5
    run = drive(config, Slow())
    assert len(run.nodes) == 2 and run.stop_reason.startswith("time limit")
