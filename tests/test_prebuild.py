"""Prebuild: what it finds in a candidate without running it, and that its builds are the worker's cache hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.backends import cpu, cuda
from kernelwright.evaluate.prebuild import Build, Prebuilder, find_builds, run_builds

CANDIDATES = Path(__file__).parent / "fixtures" / "candidates"
EXAMPLES = Path(__file__).parent.parent / "examples" / "candidates"


def test_finds_literal_sources_through_names_aliases_and_keywords() -> None:
    source = '''
import kernelwright.backends.cuda as nv
from kernelwright.backends import cpu as host
A = "extern \\"C\\" void f(float* x) {}"
FLAGS = ("-O2",)
lib = host.compile(A, FLAGS)
mod = nv.compile("__global__ void k(float* x) {}", options=["-O3"])
built_elsewhere = nv.compile("__global__ void k2(float* x) {}", arch="sm_80")
dynamic = host.compile(make_source())
other.compile(A)
'''
    assert find_builds(source) == [Build("cpu", 'extern "C" void f(float* x) {}', ("-O2",)),
                                   Build("cuda", "__global__ void k(float* x) {}", ("-O3",))]
    assert find_builds("def broken(:") == []
    assert [b.backend for b in find_builds((CANDIDATES / "cpu_gelu.py").read_text())] == ["cpu"]
    assert [b.backend for b in find_builds((EXAMPLES / "nvrtc_swish_residual.py").read_text())] == ["cuda"]
    assert find_builds((CANDIDATES / "triton_gelu.py").read_text()) == []  # Triton compiles at launch


def test_a_prebuild_fills_the_cache_the_worker_reads(private_backend_state: None, tmp_path: Path) -> None:
    (build,) = find_builds((CANDIDATES / "cpu_gelu.py").read_text())
    errors = run_builds([build, Build("cpu", 'extern "C" void f(float* x) { nonsense; }')], arch=None)
    assert len(errors) == 1 and errors[0].startswith("cpu: ")  # reported, not raised
    built = set(tmp_path.rglob("*.so"))
    assert len(built) == 1
    assert cpu.compile(build.source).path in built  # the worker's compile is a cache hit


@pytest.mark.skipif(not cuda.available()[0], reason="NVRTC not installed")
def test_cuda_prebuilds_in_a_pool_process(private_backend_state: None, tmp_path: Path) -> None:
    source = (EXAMPLES / "nvrtc_swish_residual.py").read_text()
    prebuilder = Prebuilder(workers=1, arch="sm_90")
    try:
        assert prebuilder.submit(source).result(timeout=120) == []
        assert prebuilder.submit("x = 1") is None  # nothing to build
    finally:
        prebuilder.close()
    assert list(tmp_path.rglob("*.cubin"))  # the pool's processes inherit the cache folder
