import sqlite3

import pytest

from kernelwright.store import (
    MIGRATIONS,
    LLMCall,
    NodeRecord,
    ProposalRecord,
    RunRecord,
    Store,
    StoreError,
    Usage,
)


def make_run(run_id: str = "run-1", key: str = "k", created_at: float = 0.0, **kw) -> RunRecord:
    fields = dict(
        id=run_id, key=key, task_id="task-1", task_name="add", task_path="/tasks/add.py",
        strategy="greedy", generator="template", seed=7, config={"budget": 3, "params": [1, 2]},
        created_at=created_at,
    )
    return RunRecord(**{**fields, **kw})


def make_node(seq: int, candidate_id: str, run_id: str = "run-1", eval_key: str = "ek") -> NodeRecord:
    return NodeRecord(
        run_id=run_id, seq=seq, candidate_id=candidate_id, call_index=0, name=f"n{seq}",
        parents=["p0"], generator="template", intent="faster", technique=None,
        metadata={"tile": 32}, eval_key=eval_key,
    )


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "deep" / "folder" / "kw.db") as s:
        yield s


def test_run_round_trip_and_update(store):
    run = make_run(answer=None, environment={"torch": "2.11"}, pid=42, host="box")
    store.create_run(run)
    assert run.created_at > 0 and run.updated_at == run.created_at
    assert store.get_run("run-1") == run

    store.update_run("run-1", status="finished", answer={"best": "c1"}, finished_at=5.0, elapsed_s=1.5)
    got = store.get_run("run-1")
    assert (got.status, got.answer, got.finished_at, got.elapsed_s) == ("finished", {"best": "c1"}, 5.0, 1.5)
    assert got.updated_at >= run.updated_at
    assert store.list_runs() == [got]
    assert store.list_runs("other-task") == []


def test_update_run_rejects_unknown_fields_and_id(store):
    store.create_run(make_run())
    with pytest.raises(ValueError, match="bogus"):
        store.update_run("run-1", bogus=1)
    with pytest.raises(ValueError, match="id"):
        store.update_run("run-1", id="other")
    with pytest.raises(StoreError, match="no run"):
        store.update_run("missing", status="failed")


def test_source_proposal_node_round_trip(store):
    store.create_run(make_run())
    store.put_source("c1", "def f(): pass")
    store.put_source("c1", "something else")  # content-addressed: the first stands
    assert store.get_source("c1") == "def f(): pass"
    with pytest.raises(StoreError, match="c2"):
        store.get_source("c2")

    p1 = ProposalRecord("run-1", 1, {"ask": "more"}, [], error="timeout", seconds=2.0)
    p0 = ProposalRecord("run-1", 0, {"ask": "x"}, [{"id": "c1", "name": "n", "metadata": {}}], seconds=1.0)
    store.record_proposal(p1)
    store.record_proposal(p0)
    assert store.get_proposal("run-1", 0) == p0
    assert store.get_proposal("run-1", 5) is None
    assert store.proposals("run-1") == [p0, p1]

    node = make_node(0, "c1")
    store.record_node(node)
    store.record_node(make_node(0, "c1", eval_key="replayed"))  # same seq: ignored
    assert store.nodes("run-1") == [node]


def test_node_needs_its_source_and_run(store):
    store.create_run(make_run())
    with pytest.raises(sqlite3.IntegrityError):
        store.record_node(make_node(0, "no-such-source"))


def test_llm_call_round_trip(store):
    call = LLMCall("run-1", "coder", "openai", "gpt", "prompt", "reply", 10, 5, 0.01, 1.5,
                   cached=True, request_key="rk", call_index=3)
    row_id = store.record_llm_call(call)
    assert isinstance(row_id, int)
    assert store.record_llm_call(LLMCall(None, "judge", "p", "m", "q", "a")) == row_id + 1
    got = store.llm_calls("run-1")
    assert got == [call] and got[0].cached is True


def test_usage_sums(store):
    for role, tokens, cost in [("coder", 10, 0.5), ("coder", 20, 0.25), ("judge", 1, 0.125)]:
        store.record_llm_call(LLMCall("run-1", role, "p", "m", "q", "a", tokens, 2, cost, 1.0))
    store.record_llm_call(LLMCall("run-2", "coder", "p", "m", "q", "a", 1000, 1000, 9.0, 9.0))
    assert store.usage("run-1") == Usage(3, 31, 6, 0.875, 3.0)
    assert store.usage("run-1").tokens == 37
    assert store.usage("run-1", role="coder") == Usage(2, 30, 4, 0.75, 2.0)
    assert store.usage("nobody") == Usage()
    assert store.usage_by_role("run-1") == {"coder": Usage(2, 30, 4, 0.75, 2.0), "judge": Usage(1, 1, 2, 0.125, 1.0)}


def test_evaluation_is_written_once(store):
    assert store.record_evaluation("c1", "task-1", "ek", {"status": "ok", "ms": 1.0}, 2.0) is True
    assert store.record_evaluation("c1", "task-1", "ek", {"status": "failed"}, 3.0) is False
    assert store.get_evaluation("c1", "task-1", "ek") == {"status": "ok", "ms": 1.0}
    assert store.get_evaluation("c1", "task-1", "other") is None
    assert store.record_evaluation("c1", "task-2", "ek", {"status": "ok"}, 1.0) is True
    assert store.evaluation_count() == 2
    assert store.evaluation_count("task-1") == 1
    status = store._conn.execute("SELECT status FROM evaluations WHERE task_id = 'task-1'").fetchone()[0]
    assert status == "ok"


def test_nodes_join_verdicts(store):
    store.create_run(make_run())
    for cid in ("c1", "c2", "c3"):
        store.put_source(cid, cid)
        store.record_node(make_node(int(cid[1]), cid))
    store.record_evaluation("c1", "task-1", "ek", {"status": "ok"}, 1.0)
    store.record_evaluation("c2", "other-task", "ek", {"status": "ok"}, 1.0)  # another task
    store.record_evaluation("c3", "task-1", "other-key", {"status": "ok"}, 1.0)  # another eval key
    assert [(n.candidate_id, n.verdict) for n in store.nodes("run-1")] == [
        ("c1", {"status": "ok"}), ("c2", None), ("c3", None),
    ]


def test_get_run_by_prefix(store):
    for run_id in ("abc123", "abd456", "xyz_1"):
        store.create_run(make_run(run_id))
    assert store.get_run("abc").id == "abc123"
    assert store.get_run("xyz_").id == "xyz_1"
    with pytest.raises(StoreError, match="ambiguous.*abc123, abd456"):
        store.get_run("ab")
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.get_run("nope")
    with pytest.raises(StoreError, match="no run ''"):
        store.get_run("")


def test_find_resumable_picks_newest_unfinished(store):
    store.create_run(make_run("old", created_at=1.0, status="interrupted"))
    store.create_run(make_run("newer", created_at=2.0, status="failed"))
    store.create_run(make_run("done", created_at=3.0, status="finished"))
    store.create_run(make_run("elsewhere", key="other", created_at=4.0))
    assert store.find_resumable("k").id == "newer"
    assert [r.id for r in store.list_runs()] == ["elsewhere", "done", "newer", "old"]
    store.update_run("newer", status="finished")
    assert store.find_resumable("k").id == "old"
    store.update_run("old", status="finished")
    assert store.find_resumable("k") is None


def test_wal_and_commits_are_visible_to_other_connections(tmp_path):
    path = tmp_path / "kw.db"
    with Store(path) as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.create_run(make_run())
        store.put_source("c1", "src")
        store.record_node(make_node(0, "c1"))
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT candidate_id FROM nodes WHERE run_id = 'run-1'").fetchall() == [("c1",)]
        finally:
            other.close()


def test_schema_version_and_reopen(tmp_path):
    path = tmp_path / "kw.db"
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        store.create_run(make_run())
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.get_run("run-1").id == "run-1"


def test_memory_store():
    with Store(":memory:") as store:
        store.create_run(make_run())
        assert store.get_run("run-1").seed == 7


def test_future_schema_is_refused(tmp_path):
    path = tmp_path / "kw.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer kernelwright") as err:
        Store(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
