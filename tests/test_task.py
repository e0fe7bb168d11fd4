"""Task files: KernelBench format read with `ast`, KERNELWRIGHT metadata checked, ids by content."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from kernelwright.task import DEFAULT_DISTRIBUTIONS, Task, TaskError, TaskMeta, load_task, load_tasks

TASKS = Path(__file__).resolve().parent / "fixtures" / "tasks"

BODY = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x * 2


def get_inputs():
    return [torch.randn(8)]


def get_init_inputs():
    return []
'''


def write_task(folder: Path, meta: str | None, name: str = "task.py") -> Path:
    """A valid task, with `meta` (source text of the KERNELWRIGHT assignment) on line 3."""
    lines = BODY.splitlines(keepends=True)
    if meta is not None:
        lines.insert(2, meta + "\n")
    path = folder / name
    path.write_text("".join(lines))
    return path


def test_load_task_reads_the_fixture_and_its_metadata():
    gelu = load_task(TASKS / "gelu.py")
    assert isinstance(gelu, Task)
    assert gelu.name == "gelu"
    assert gelu.path == (TASKS / "gelu.py").resolve() and gelu.path.is_absolute()
    assert gelu.source == (TASKS / "gelu.py").read_text()
    assert gelu.meta.shape_variants == ({"batch_size": 3, "dim": 1001},)
    assert gelu.meta.distributions == DEFAULT_DISTRIBUTIONS  # not set: the default extra distribution
    assert gelu.meta.pinned_inputs is False and gelu.meta.dtype is None and gelu.meta.allow_ops == ()


def test_a_task_without_metadata_gets_the_defaults():
    scale_bias = load_task(TASKS / "scale_bias.py")
    assert scale_bias.meta == TaskMeta()
    assert scale_bias.meta.to_dict()["distributions"] == [dict(d) for d in DEFAULT_DISTRIBUTIONS]


def test_load_tasks_on_a_folder_lists_every_task_sorted():
    found = load_tasks(TASKS)
    assert [t.name for t in found] == ["gelu", "scale_bias", "softmax"]
    assert len({t.id for t in found}) == 3


def test_load_tasks_on_a_file_is_that_task():
    [softmax] = load_tasks(TASKS / "softmax.py")
    assert softmax.name == "softmax"
    assert softmax.meta.shape_variants == ({"rows": 5, "cols": 77},)


def test_load_tasks_skips_files_starting_with_an_underscore(tmp_path):
    write_task(tmp_path, None, "real.py")
    (tmp_path / "_helper.py").write_text("x = 1\n")  # not a task, and not read as one
    assert [t.name for t in load_tasks(tmp_path)] == ["real"]


def test_id_is_a_content_hash(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    original = load_task(TASKS / "gelu.py")
    copy_a = load_task(shutil.copy(TASKS / "gelu.py", tmp_path / "a" / "gelu.py"))
    copy_b = load_task(shutil.copy(TASKS / "gelu.py", tmp_path / "b" / "other_name.py"))
    assert original.id == copy_a.id == copy_b.id
    assert len(original.id) == 16 and int(original.id, 16) >= 0

    edited = tmp_path / "a" / "gelu.py"
    edited.write_text(edited.read_text().replace("dim = 1024", "dim = 1025"))
    assert load_task(edited).id != original.id


def test_metadata_edit_changes_the_id(tmp_path):
    plain = load_task(write_task(tmp_path, None, "plain.py"))
    pinned = load_task(write_task(tmp_path, 'KERNELWRIGHT = {"pinned_inputs": True}', "pinned.py"))
    assert pinned.meta.pinned_inputs is True
    assert plain.id != pinned.id


def test_full_metadata_is_read(tmp_path):
    meta = ('KERNELWRIGHT = {"shape_variants": [{"n": 3}], "distributions": [{"name": "uniform", "low": 0, '
            '"high": 2}], "pinned_inputs": False, "dtype": "bfloat16", "precision": "tf32", "atol": 1e-3, '
            '"rtol": 0, "allow_ops": ["conv2d"]}')
    task = load_task(write_task(tmp_path, meta))
    assert task.meta == TaskMeta(shape_variants=({"n": 3},), distributions=({"name": "uniform", "low": 0, "high": 2},),
                                 pinned_inputs=False, dtype="bfloat16", precision="tf32", atol=1e-3, rtol=0,
                                 allow_ops=("conv2d",))


@pytest.mark.parametrize("meta, says", [
    ("KERNELWRIGHT = {'dtype': DTYPE}", "must be a literal dict"),
    ("KERNELWRIGHT = dict(dtype='float32')", "must be a literal dict"),
    ("KERNELWRIGHT = ['dtype', 'float32']", "must be a dict, got list"),
    ("KERNELWRIGHT = {'dtyp': 'float32'}", "unknown KERNELWRIGHT key(s): dtyp"),
    ("KERNELWRIGHT = {'dtype': 'float8'}", "dtype must be one of"),
    ("KERNELWRIGHT = {'precision': 'fp8'}", "precision must be one of"),
    ("KERNELWRIGHT = {'atol': -1}", "atol must be a non-negative number"),
    ("KERNELWRIGHT = {'rtol': '1e-3'}", "rtol must be a non-negative number"),
    ("KERNELWRIGHT = {'shape_variants': {'n': 3}}", "shape_variants must be a list of dicts"),
    ("KERNELWRIGHT = {'distributions': [{'name': 'cauchy'}]}", "distribution is a dict with name"),
    ("KERNELWRIGHT = {'allow_ops': ['conv2d', 3]}", "allow_ops must be a list of op names"),
])
def test_malformed_metadata_names_file_and_line(tmp_path, meta, says):
    path = write_task(tmp_path, meta)
    with pytest.raises(TaskError) as caught:
        load_task(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: ")  # the metadata's line
    assert says in message
    assert "\n" not in message


def test_a_syntax_error_names_its_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(BODY + "\ndef oops(:\n")
    with pytest.raises(TaskError, match=r"broken\.py:\d+: syntax error"):
        load_task(path)


def test_a_file_missing_the_kernelbench_names_is_not_a_task(tmp_path):
    path = tmp_path / "half.py"
    path.write_text("import torch\n\nclass Model(torch.nn.Module):\n    pass\n")
    with pytest.raises(TaskError) as caught:
        load_task(path)
    assert str(caught.value) == f"{path}: not a task: no get_inputs, get_init_inputs defined at module level"


def test_a_missing_file_cannot_be_read(tmp_path):
    with pytest.raises(TaskError, match="cannot read task file"):
        load_task(tmp_path / "absent.py")
    with pytest.raises(TaskError, match="no such file or folder"):
        load_tasks(tmp_path / "absent.py")


def test_a_folder_without_tasks_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no python here\n")
    (tmp_path / "_private.py").write_text("x = 1\n")
    with pytest.raises(TaskError) as caught:
        load_tasks(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: no task files")


def test_one_bad_task_in_a_folder_fails_the_load_naming_it(tmp_path):
    write_task(tmp_path, None, "good.py")
    bad = write_task(tmp_path, "KERNELWRIGHT = {'dtype': 'int8'}", "zbad.py")
    with pytest.raises(TaskError, match=re.escape(str(bad))):
        load_tasks(tmp_path)
