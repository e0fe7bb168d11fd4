"""Device ceilings seeded into a private kernelwright cache, for tests that evaluate on the CPU.

Measuring the ceilings (the first time a cache meets a device) takes seconds and, on a loaded 2-core
machine, can take minutes (see the report on roofline.measure_ceilings). These numbers are above what
this CPU reaches, so no honest time falls under the floor.
"""

from __future__ import annotations

import json
from pathlib import Path

BANDWIDTH = 1e11  # bytes/s
FP32_FLOPS = 1e12  # FLOP/s


def seed_ceilings(root: Path) -> None:
    """Write this CPU's ceilings (BANDWIDTH, FP32_FLOPS) into the cache rooted at `root`."""
    from kernelwright import environment

    folder = root / "ceilings"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{environment.current('cpu').key()}.json").write_text(json.dumps({
        "device_name": environment.current("cpu").device_name, "bandwidth": BANDWIDTH,
        "read_bandwidth": BANDWIDTH, "flops": {"fp32": FP32_FLOPS}, "measured_at": "2000-01-01"}))
