import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")

# Triton reads TRITON_INTERPRET when kernels are decorated, so the check runs in a fresh interpreter.
SCRIPT = textwrap.dedent(
    """
    import json
    import torch
    import triton
    import triton.language as tl
    from kernelwright.backends import launches
    from kernelwright.backends import triton as kw_triton

    @triton.jit
    def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        total = tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask)
        tl.store(out_ptr + offsets, total, mask=mask)

    kw_triton.install_interpreter_launch_record()
    kw_triton.install_interpreter_launch_record()  # idempotent: still one record per launch

    n = 1000
    x, y = torch.randn(n), torch.randn(n)
    out = torch.empty(n)
    for _ in range(3):
        add_kernel[(triton.cdiv(n, 256),)](x, y, out, n, BLOCK=256)
    totals = launches.snapshot()
    print(json.dumps({
        "count": totals.count,
        "seconds": totals.seconds,
        "correct": bool(torch.allclose(out, x + y)),
        "available": kw_triton.available(),
    }))
    """
)


def test_interpreted_launches_are_recorded():
    source_root = Path(__file__).resolve().parents[1] / "src"
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(source_root), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["correct"]
    assert report["count"] == {"add_kernel": 3}
    assert report["seconds"]["add_kernel"] > 0
    assert report["available"][0] is True


def test_install_wraps_the_interpreter_entry_once():
    from triton.runtime.interpreter import InterpretedFunction

    from kernelwright.backends import triton as kw_triton

    kw_triton.install_interpreter_launch_record()
    wrapped = InterpretedFunction.run
    kw_triton.install_interpreter_launch_record()
    assert InterpretedFunction.run is wrapped
    assert not hasattr(wrapped.__wrapped__, "__wrapped__")  # one layer, not two
    usable, reason = kw_triton.available()
    assert isinstance(usable, bool) and "Triton" in reason
