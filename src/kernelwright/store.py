"""The store: one SQLite file (WAL mode) that holds everything a run did.

Tables (schema version in `PRAGMA user_version`, upgraded by MIGRATIONS):

    runs         one row per optimization run: its key, task, strategy,
                 generator, seed, config, status, stop reason, answer
    sources      candidate sources, content-addressed by candidate id
    proposals    the journal of generator calls per run: request, the
                 candidates it returned (or its error); a resumed run
                 replays it instead of asking the generator again
    nodes        the run's candidates in order (seq), with parents and lineage
    evaluations  verdict JSON per (candidate, task, eval_key): an evaluation
                 is never repeated on the same task, device, versions and options
    llm_calls    prompt, reply, tokens, cost, latency of every LLM call
    benches      one row per bench: its key, suite, filter, config, status
    bench_tasks  a bench's tasks in order, each with the run that optimizes it
                 (or the error that made the task unusable)

Every write commits at once: a process killed at any moment loses at most the
work in flight. Threads may share one Store: its statements are serialized.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields
from collections.abc import Iterator
from pathlib import Path
from typing import Any

class StoreError(Exception):
    """A store that cannot be opened or a run that does not exist; one line."""


@dataclass
class RunRecord:
    id: str
    key: str  # hash of what makes two commands "the same run" (task, strategy, generator, seed, budget, params)
    task_id: str
    task_name: str
    task_path: str
    strategy: str
    generator: str
    seed: int
    config: dict[str, Any]
    status: str = "running"  # running | interrupted | finished | failed
    stop_reason: str | None = None
    answer: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    elapsed_s: float = 0.0  # wall time spent in this run over all its sessions
    pid: int | None = None
    host: str | None = None


@dataclass
class ProposalRecord:
    run_id: str
    call_index: int
    request: dict[str, Any]
    candidates: list[dict[str, Any]]  # [{"id", "name", "metadata"}], sources in `sources`
    error: str | None = None
    seconds: float = 0.0


@dataclass
class NodeRecord:
    run_id: str
    seq: int
    candidate_id: str
    call_index: int
    name: str
    parents: list[str]
    generator: str
    intent: str
    technique: str | None
    metadata: dict[str, Any]
    eval_key: str
    verdict: dict[str, Any] | None = None  # joined from evaluations when read


@dataclass
class LLMCall:
    run_id: str | None
    role: str  # "coder", "debugger", "planner", "judge", ...
    provider: str
    model: str
    prompt: str
    reply: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0  # dollars; None when the model's price is unknown (sums skip it)
    latency_s: float = 0.0
    cached: bool = False
    error: str | None = None
    request_key: str | None = None
    call_index: int | None = None


@dataclass
class BenchRecord:
    id: str
    key: str  # hash of what makes two commands "the same bench" (the tasks and every run setting)
    suite: str  # as given: "builtin" or a path
    task_filter: str | None
    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    status: str = "running"  # running | interrupted | finished | failed
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None


@dataclass
class BenchTaskRecord:
    bench_id: str
    seq: int
    task_key: str  # the task's name in its suite ("gelu", "level1/19_ReLU")
    task_id: str
    task_path: str
    variants: int  # shape variants besides the task's own shapes
    run_id: str | None = None
    error: str | None = None  # the task cannot be benched (its reference fails): one line


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# One script per schema version; never edit a released one, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, key TEXT, task_id TEXT, task_name TEXT, task_path TEXT,
        strategy TEXT, generator TEXT, seed INTEGER, config TEXT, status TEXT,
        stop_reason TEXT, answer TEXT, environment TEXT, created_at REAL, updated_at REAL,
        finished_at REAL, elapsed_s REAL, pid INTEGER, host TEXT
    );
    CREATE INDEX runs_key ON runs(key);
    CREATE TABLE sources (candidate_id TEXT PRIMARY KEY, source TEXT NOT NULL, created_at REAL);
    CREATE TABLE proposals (
        run_id TEXT REFERENCES runs(id), call_index INTEGER, request TEXT, candidates TEXT,
        error TEXT, seconds REAL, created_at REAL, PRIMARY KEY (run_id, call_index)
    );
    CREATE TABLE nodes (
        run_id TEXT REFERENCES runs(id), seq INTEGER,
        candidate_id TEXT REFERENCES sources(candidate_id), call_index INTEGER, name TEXT,
        parents TEXT, generator TEXT, intent TEXT, technique TEXT, metadata TEXT,
        eval_key TEXT, created_at REAL, PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE evaluations (
        candidate_id TEXT, task_id TEXT, eval_key TEXT, status TEXT, verdict TEXT,
        seconds REAL, created_at REAL, PRIMARY KEY (candidate_id, task_id, eval_key)
    );
    CREATE TABLE llm_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, call_index INTEGER, role TEXT,
        provider TEXT, model TEXT, request_key TEXT, prompt TEXT, reply TEXT,
        prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, latency_s REAL,
        cached INTEGER, error TEXT, created_at REAL
    );
    CREATE INDEX llm_calls_run ON llm_calls(run_id);
    CREATE INDEX llm_calls_request ON llm_calls(request_key);
    """,
    """
    CREATE TABLE benches (
        id TEXT PRIMARY KEY, key TEXT, suite TEXT, task_filter TEXT, config TEXT, environment TEXT,
        status TEXT, created_at REAL, updated_at REAL, finished_at REAL
    );
    CREATE INDEX benches_key ON benches(key);
    CREATE TABLE bench_tasks (
        bench_id TEXT REFERENCES benches(id), seq INTEGER, task_key TEXT, task_id TEXT, task_path TEXT,
        variants INTEGER, run_id TEXT, error TEXT, PRIMARY KEY (bench_id, seq)
    );
    """,
]

# Record fields stored as JSON text; every other field maps to a column of the same name.
_RUN_JSON = frozenset({"config", "answer", "environment"})
_PROPOSAL_JSON = frozenset({"request", "candidates"})
_NODE_JSON = frozenset({"parents", "metadata", "verdict"})
_BENCH_JSON = frozenset({"config", "environment"})
_RUN_UPDATABLE = frozenset(f.name for f in fields(RunRecord)) - {"id"}
_BENCH_UPDATABLE = frozenset(f.name for f in fields(BenchRecord)) - {"id"}

# Usage totals in the order of Usage's fields; {group} and {where} select one role, all, or per role.
_USAGE_SQL = (
    "SELECT {group} COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
    " COALESCE(SUM(cost), 0.0), COALESCE(SUM(latency_s), 0.0) FROM llm_calls WHERE run_id = ? {where}"
)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _columns(record: Any, json_fields: frozenset[str], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        f.name: _dump(getattr(record, f.name)) if f.name in json_fields else getattr(record, f.name)
        for f in fields(record)
        if f.name not in skip
    }


def _record(cls: type, row: sqlite3.Row, json_fields: frozenset[str]) -> Any:
    return cls(**{f.name: _load(row[f.name]) if f.name in json_fields else row[f.name] for f in fields(cls)})


class _Connection:
    """One sqlite3 connection shared by threads (a generator may record LLM calls from its own
    thread): each statement runs and is read out whole under a lock."""

    def __init__(self, path: str) -> None:
        # Autocommit: each statement is its own transaction, so nothing waits in a buffer.
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()

    def execute(self, sql: str, args: Any = ()) -> _Result:
        with self._lock:
            cursor = self._conn.execute(sql, args)
            return _Result(cursor.fetchall(), cursor.rowcount, cursor.lastrowid)

    def executescript(self, script: str) -> None:
        with self._lock:
            self._conn.executescript(script)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The statements inside commit together or not at all; other threads wait meanwhile."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@dataclass
class _Result:
    rows: list[sqlite3.Row]
    rowcount: int
    lastrowid: int | None

    def fetchone(self) -> sqlite3.Row | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[sqlite3.Row]:
        return self.rows

    def __iter__(self) -> Iterator[sqlite3.Row]:
        return iter(self.rows)


class Store:
    """The SQLite store at `path` (created with its folders if missing; ":memory:" works too)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _Connection(str(self.path))
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise StoreError(f"{self.path}: cannot open as a kernelwright store ({e})") from None
        except StoreError:
            self._conn.close()
            raise

    def _migrate(self) -> None:
        known = len(MIGRATIONS)
        version = self.schema_version
        if version > known:
            raise StoreError(
                f"{self.path}: written by a newer kernelwright (schema {version}, this one knows {known})"
            )
        for target in range(version + 1, known + 1):
            script = f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\nPRAGMA user_version = {target};\nCOMMIT;"
            try:
                self._conn.executescript(script)
            except sqlite3.OperationalError:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                # Another process opening the same new file may have applied it first.
                if self.schema_version < target:
                    raise

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _insert(self, verb: str, table: str, values: dict[str, Any]) -> _Result:
        sql = f"{verb} INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
        return self._conn.execute(sql, list(values.values()))

    # -- runs

    def create_run(self, run: RunRecord) -> None:
        """Insert `run`, stamping its created_at/updated_at (on the record too) when they are 0."""
        now = time.time()
        run.created_at = run.created_at or now
        run.updated_at = run.updated_at or now
        self._insert("INSERT", "runs", _columns(run, _RUN_JSON))

    def get_run(self, run_id: str) -> RunRecord:
        """The run with id `run_id`, or the only one whose id starts with it."""
        return _record(RunRecord, self._by_id_or_prefix("runs", "run", run_id), _RUN_JSON)

    def _by_id_or_prefix(self, table: str, what: str, ident: str) -> sqlite3.Row:
        # `table` is one of this module's own table names, never input.
        row = self._conn.execute(f"SELECT * FROM {table} WHERE id = ?", (ident,)).fetchone()
        if row is not None:
            return row
        # substr, not LIKE: ids may hold "_" or "%". An empty prefix names nothing.
        sql = f"SELECT * FROM {table} WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6"
        rows = self._conn.execute(sql, (len(ident), ident)).fetchall() if ident else []
        if not rows:
            raise StoreError(f"no {what} {ident!r} in {self.path}")
        if len(rows) > 1:
            shown = ", ".join(r["id"] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise StoreError(f"{what} id {ident!r} is ambiguous in {self.path}: {shown}")
        return rows[0]

    def find_resumable(self, key: str) -> RunRecord | None:
        """The newest run with this key that did not finish, if any."""
        row = self._conn.execute(
            "SELECT * FROM runs WHERE key = ? AND status != 'finished'"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (key,),
        ).fetchone()
        return None if row is None else _record(RunRecord, row, _RUN_JSON)

    def list_runs(self, task_id: str | None = None) -> list[RunRecord]:
        """Runs, newest first, of one task or of all."""
        where, args = ("WHERE task_id = ?", (task_id,)) if task_id is not None else ("", ())
        rows = self._conn.execute(f"SELECT * FROM runs {where} ORDER BY created_at DESC, rowid DESC", args)
        return [_record(RunRecord, row, _RUN_JSON) for row in rows]

    def update_run(self, run_id: str, **changes: Any) -> None:
        """Set RunRecord fields of run `run_id` (exact id); updated_at is stamped unless given."""
        self._update("runs", "run", run_id, changes, _RUN_UPDATABLE, _RUN_JSON)

    def _update(self, table: str, what: str, ident: str, changes: dict[str, Any], updatable: frozenset[str],
                json_fields: frozenset[str]) -> None:
        unknown = sorted(set(changes) - updatable)
        if unknown:
            raise ValueError(f"not updatable {what} fields: {', '.join(unknown)}")
        changes.setdefault("updated_at", time.time())
        values = [_dump(v) if k in json_fields else v for k, v in changes.items()]
        # Column names come from the whitelist above, never from outside.
        assignments = ", ".join(f"{k} = ?" for k in changes)
        cursor = self._conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*values, ident])
        if cursor.rowcount == 0:
            raise StoreError(f"no {what} {ident!r} in {self.path}")

    # -- benches

    def create_bench(self, bench: BenchRecord, tasks: list[BenchTaskRecord]) -> None:
        """Insert `bench` and its task list (stamping created_at/updated_at when they are 0), all at once."""
        now = time.time()
        bench.created_at = bench.created_at or now
        bench.updated_at = bench.updated_at or now
        with self._conn.transaction():
            self._insert("INSERT", "benches", _columns(bench, _BENCH_JSON))
            for task in tasks:
                self._insert("INSERT", "bench_tasks", _columns(task, frozenset()))

    def get_bench(self, bench_id: str) -> BenchRecord:
        """The bench with id `bench_id`, or the only one whose id starts with it."""
        return _record(BenchRecord, self._by_id_or_prefix("benches", "bench", bench_id), _BENCH_JSON)

    def find_resumable_bench(self, key: str) -> BenchRecord | None:
        """The newest bench with this key that did not finish, if any."""
        row = self._conn.execute(
            "SELECT * FROM benches WHERE key = ? AND status != 'finished'"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (key,),
        ).fetchone()
        return None if row is None else _record(BenchRecord, row, _BENCH_JSON)

    def list_benches(self) -> list[BenchRecord]:
        rows = self._conn.execute("SELECT * FROM benches ORDER BY created_at DESC, rowid DESC")
        return [_record(BenchRecord, row, _BENCH_JSON) for row in rows]

    def update_bench(self, bench_id: str, **changes: Any) -> None:
        """Set BenchRecord fields of bench `bench_id` (exact id); updated_at is stamped unless given."""
        self._update("benches", "bench", bench_id, changes, _BENCH_UPDATABLE, _BENCH_JSON)

    def bench_tasks(self, bench_id: str) -> list[BenchTaskRecord]:
        rows = self._conn.execute("SELECT * FROM bench_tasks WHERE bench_id = ? ORDER BY seq", (bench_id,))
        return [_record(BenchTaskRecord, row, frozenset()) for row in rows]

    def link_bench_task(self, bench_id: str, seq: int, run_id: str) -> None:
        """Task `seq` of the bench is optimized by run `run_id`."""
        self._update_bench_task(bench_id, seq, "run_id", run_id)

    def fail_bench_task(self, bench_id: str, seq: int, error: str) -> None:
        """Task `seq` of the bench cannot be benched, for this one-line reason."""
        self._update_bench_task(bench_id, seq, "error", error)

    def _update_bench_task(self, bench_id: str, seq: int, column: str, value: str) -> None:
        cursor = self._conn.execute(f"UPDATE bench_tasks SET {column} = ? WHERE bench_id = ? AND seq = ?",
                                    (value, bench_id, seq))
        if cursor.rowcount == 0:
            raise StoreError(f"no task {seq} in bench {bench_id!r} in {self.path}")

    # -- sources

    def put_source(self, candidate_id: str, source: str) -> None:
        # Content-addressed: the same id always means the same source, so the first write stands.
        values = {"candidate_id": candidate_id, "source": source, "created_at": time.time()}
        self._insert("INSERT OR IGNORE", "sources", values)

    def get_source(self, candidate_id: str) -> str:
        row = self._conn.execute(
            "SELECT source FROM sources WHERE candidate_id = ?", (candidate_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"no source for candidate {candidate_id!r} in {self.path}")
        return row["source"]

    # -- proposals

    def record_proposal(self, rec: ProposalRecord) -> None:
        values = {**_columns(rec, _PROPOSAL_JSON), "created_at": time.time()}
        self._insert("INSERT OR REPLACE", "proposals", values)

    def get_proposal(self, run_id: str, call_index: int) -> ProposalRecord | None:
        row = self._conn.execute(
            "SELECT * FROM proposals WHERE run_id = ? AND call_index = ?", (run_id, call_index)
        ).fetchone()
        return None if row is None else _record(ProposalRecord, row, _PROPOSAL_JSON)

    def proposals(self, run_id: str) -> list[ProposalRecord]:
        rows = self._conn.execute("SELECT * FROM proposals WHERE run_id = ? ORDER BY call_index", (run_id,))
        return [_record(ProposalRecord, row, _PROPOSAL_JSON) for row in rows]

    # -- nodes

    def record_node(self, rec: NodeRecord) -> None:
        """Append a node (store its source first); a replayed seq is ignored; verdicts live in evaluations."""
        values = _columns(rec, _NODE_JSON, skip=frozenset({"verdict"}))
        self._insert("INSERT OR IGNORE", "nodes", {**values, "created_at": time.time()})

    def nodes(self, run_id: str) -> list[NodeRecord]:
        """The run's nodes by seq, each with its verdict on the run's task, or None if not evaluated."""
        rows = self._conn.execute(
            """SELECT n.*, e.verdict FROM nodes n JOIN runs r ON r.id = n.run_id
               LEFT JOIN evaluations e ON e.candidate_id = n.candidate_id
                   AND e.task_id = r.task_id AND e.eval_key = n.eval_key
               WHERE n.run_id = ? ORDER BY n.seq""",
            (run_id,),
        )
        return [_record(NodeRecord, row, _NODE_JSON) for row in rows]

    # -- evaluations

    def record_evaluation(
        self, candidate_id: str, task_id: str, eval_key: str, verdict: dict[str, Any], seconds: float
    ) -> bool:
        """Store a verdict; False (and the first one kept) when this evaluation already exists."""
        values = {
            "candidate_id": candidate_id, "task_id": task_id, "eval_key": eval_key,
            "status": verdict.get("status"), "verdict": _dump(verdict), "seconds": seconds,
            "created_at": time.time(),
        }
        return self._insert("INSERT OR IGNORE", "evaluations", values).rowcount == 1

    def get_evaluation(self, candidate_id: str, task_id: str, eval_key: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT verdict FROM evaluations WHERE candidate_id = ? AND task_id = ? AND eval_key = ?",
            (candidate_id, task_id, eval_key),
        ).fetchone()
        return None if row is None else _load(row["verdict"])

    def evaluation_seconds(self, run_id: str) -> float:
        """Wall time the evaluator spent on the run's candidates (an evaluation reused from an earlier
        run counts its original time: it is what judging that candidate cost)."""
        row = self._conn.execute(
            """SELECT COALESCE(SUM(e.seconds), 0.0) FROM nodes n JOIN runs r ON r.id = n.run_id
               JOIN evaluations e ON e.candidate_id = n.candidate_id
                   AND e.task_id = r.task_id AND e.eval_key = n.eval_key
               WHERE n.run_id = ?""",
            (run_id,),
        ).fetchone()
        return row[0]

    def evaluation_seconds_by_candidate(self, run_id: str) -> dict[str, float]:
        """Per candidate of the run, the evaluator's wall time on it (as `evaluation_seconds` counts it)."""
        rows = self._conn.execute(
            """SELECT n.candidate_id, e.seconds FROM nodes n JOIN runs r ON r.id = n.run_id
               JOIN evaluations e ON e.candidate_id = n.candidate_id
                   AND e.task_id = r.task_id AND e.eval_key = n.eval_key
               WHERE n.run_id = ?""",
            (run_id,),
        )
        return {row[0]: row[1] or 0.0 for row in rows}

    def evaluation_count(self, task_id: str | None = None) -> int:
        where, args = ("WHERE task_id = ?", (task_id,)) if task_id is not None else ("", ())
        return self._conn.execute(f"SELECT COUNT(*) FROM evaluations {where}", args).fetchone()[0]

    # -- LLM calls

    def record_llm_call(self, call: LLMCall) -> int:
        """Store one LLM call; returns its row id."""
        values = {**_columns(call, frozenset()), "cached": int(call.cached), "created_at": time.time()}
        return self._insert("INSERT", "llm_calls", values).lastrowid

    def llm_calls(self, run_id: str) -> list[LLMCall]:
        rows = self._conn.execute("SELECT * FROM llm_calls WHERE run_id = ? ORDER BY id", (run_id,))
        calls = [_record(LLMCall, row, frozenset()) for row in rows]
        for call in calls:
            call.cached = bool(call.cached)
        return calls

    def usage(self, run_id: str, role: str | None = None) -> Usage:
        """Totals of the run's LLM calls, of one role or of all."""
        where, args = ("AND role = ?", (run_id, role)) if role is not None else ("", (run_id,))
        return Usage(*self._conn.execute(_USAGE_SQL.format(group="", where=where), args).fetchone())

    def usage_by_role(self, run_id: str) -> dict[str, Usage]:
        sql = _USAGE_SQL.format(group="role,", where="GROUP BY role ORDER BY role")
        rows = self._conn.execute(sql, (run_id,))
        return {row[0]: Usage(*tuple(row)[1:]) for row in rows}
