"""Where kernelwright keeps what it caches on disk (compiled kernels, baselines, device ceilings)."""

from __future__ import annotations

import os
from pathlib import Path

# One setting, one place: the cache root. Everything cached is keyed by content
# hashes and versions, so deleting the folder only costs recomputation.
CACHE_ENV = "KERNELWRIGHT_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """Return (creating it) the cache folder `parts` under the cache root."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kernelwright")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
