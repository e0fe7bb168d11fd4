"""Tasks: a PyTorch reference in KernelBench format, plus what kernelwright adds.

A task file defines `Model` (an `nn.Module`), `get_inputs()` and
`get_init_inputs()`, exactly as KernelBench's files do, and they load as they
are. Optionally it holds a module-level dict literal named `KERNELWRIGHT`:

    KERNELWRIGHT = {
        # Module globals to override, one dict per variant; get_inputs() and
        # get_init_inputs() are called again under each, and the candidate
        # must pass on every one.
        "shape_variants": [{"batch_size": 3, "dim": 1000}],
        # Input distributions for correctness, besides the task's own
        # generator: "normal" with a mean and std, or "uniform" with low/high.
        "distributions": [{"name": "normal", "mean": 0.5, "std": 2.0}],
        # True when inputs must come from get_inputs() alone (indices, masks,
        # inputs with a domain such as log's): no other distribution is drawn.
        "pinned_inputs": False,
        "dtype": "bfloat16",        # cast floating inputs and parameters
        "precision": "tf32",        # lowest arithmetic the task admits
        "atol": 1e-3, "rtol": 1e-3, # explicit tolerances (override precision's)
        "allow_ops": ["conv2d"],    # PyTorch ops a candidate may call
    }

The file is read with `ast` here, never executed: the metadata must be a
literal. Running `Model` and `get_inputs` happens in the reference worker,
whose errors name the file too.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright import pysource

META_NAME = "KERNELWRIGHT"
REQUIRED = ("Model", "get_inputs", "get_init_inputs")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
DTYPES = ("float32", "float16", "bfloat16", "float64")

# Correctness draws from the task's own generator and from this one unless the
# task pins its inputs: a non-zero mean and a wide scale expose kernels that
# only work on N(0, 1) (say, a softmax without the max subtraction).
DEFAULT_DISTRIBUTIONS: tuple[dict[str, Any], ...] = ({"name": "normal", "mean": 0.5, "std": 3.0},)


class TaskError(Exception):
    """A malformed task; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class TaskMeta:
    shape_variants: tuple[dict[str, Any], ...] = ()
    distributions: tuple[dict[str, Any], ...] = DEFAULT_DISTRIBUTIONS
    pinned_inputs: bool = False
    dtype: str | None = None
    precision: str | None = None
    atol: float | None = None
    rtol: float | None = None
    allow_ops: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape_variants": [dict(v) for v in self.shape_variants],
            "distributions": [dict(d) for d in self.distributions],
            "pinned_inputs": self.pinned_inputs,
            "dtype": self.dtype,
            "precision": self.precision,
            "atol": self.atol,
            "rtol": self.rtol,
            "allow_ops": list(self.allow_ops),
        }


@dataclass(frozen=True)
class Task:
    path: Path
    source: str
    meta: TaskMeta = field(default_factory=TaskMeta)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def id(self) -> str:
        """Content hash: the same reference and metadata is the same task wherever the file lies."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def load_task(path: str | Path) -> Task:
    """Read one task file and check its shape; raise TaskError with a one-line reason."""
    path = Path(path)
    try:
        source = path.read_text()
    except OSError as e:
        raise TaskError(f"{path}: cannot read task file ({e.strerror or e})") from None
    try:
        tree = pysource.parse(source, filename=str(path))
    except SyntaxError as e:
        raise TaskError(f"{path}:{e.lineno}: syntax error in task: {e.msg}") from None

    defined = _top_level_names(tree)
    missing = [name for name in REQUIRED if name not in defined]
    if missing:
        raise TaskError(f"{path}: not a task: no {', '.join(missing)} defined at module level")
    return Task(path=path.resolve(), source=source, meta=_read_meta(tree, path))


def load_tasks(path: str | Path) -> list[Task]:
    """A task file, or every task file (`*.py`, not starting with `_`) in a folder, sorted by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        if not files:
            raise TaskError(f"{path}: no task files (*.py) in this folder")
        return [load_task(p) for p in files]
    if not path.exists():
        raise TaskError(f"{path}: no such file or folder")
    return [load_task(path)]


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _read_meta(tree: ast.Module, path: Path) -> TaskMeta:
    node = next(
        (n for n in tree.body if isinstance(n, ast.Assign)
         and any(isinstance(t, ast.Name) and t.id == META_NAME for t in n.targets)),
        None,
    )
    if node is None:
        return TaskMeta()
    where = f"{path}:{node.lineno}"
    try:
        raw = ast.literal_eval(node.value)
    except ValueError:
        raise TaskError(f"{where}: {META_NAME} must be a literal dict (no names or calls)") from None
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: {META_NAME} must be a dict, got {type(raw).__name__}")
    unknown = set(raw) - set(TaskMeta.__dataclass_fields__)
    if unknown:
        raise TaskError(f"{where}: unknown {META_NAME} key(s): {', '.join(sorted(unknown))}")

    variants = raw.get("shape_variants", ())
    if not isinstance(variants, (list, tuple)) or not all(isinstance(v, dict) for v in variants):
        raise TaskError(f"{where}: shape_variants must be a list of dicts of module globals")
    distributions = raw.get("distributions", DEFAULT_DISTRIBUTIONS)
    for d in distributions:
        if not isinstance(d, dict) or d.get("name") not in ("normal", "uniform"):
            raise TaskError(f"{where}: each distribution is a dict with name 'normal' or 'uniform', got {d!r}")
    if raw.get("dtype") not in (None, *DTYPES):
        raise TaskError(f"{where}: dtype must be one of {', '.join(DTYPES)}, got {raw['dtype']!r}")
    if raw.get("precision") not in (None, *PRECISIONS):
        raise TaskError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, got {raw['precision']!r}")
    for key in ("atol", "rtol"):
        if raw.get(key) is not None and not (isinstance(raw[key], (int, float)) and raw[key] >= 0):
            raise TaskError(f"{where}: {key} must be a non-negative number, got {raw[key]!r}")
    allow_ops = raw.get("allow_ops", ())
    if not all(isinstance(op, str) for op in allow_ops):
        raise TaskError(f"{where}: allow_ops must be a list of op names (strings)")

    return TaskMeta(
        shape_variants=tuple(dict(v) for v in variants),
        distributions=tuple(dict(d) for d in distributions),
        pinned_inputs=bool(raw.get("pinned_inputs", False)),
        dtype=raw.get("dtype"),
        precision=raw.get("precision"),
        atol=raw.get("atol"),
        rtol=raw.get("rtol"),
        allow_ops=tuple(allow_ops),
    )
