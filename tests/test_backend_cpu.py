import threading
import time
import uuid

import pytest
import torch

from kernelwright.backends import CompileError, cpu, launches

SOURCE = r"""
#include <omp.h>
#include <cstdint>

extern "C" void relu(const float* x, float* out, int64_t n) {
    #pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

extern "C" {
int row_sum(const double* x, double* out, int rows, int cols) {
    #pragma omp parallel for
    for (int r = 0; r < rows; ++r) {
        double total = 0.0;
        for (int c = 0; c < cols; ++c) total += x[r * cols + c];
        out[r] = total;
    }
    return omp_get_max_threads();
}
}
"""


pytestmark = pytest.mark.usefixtures("private_backend_state")


def test_relu_and_row_sum_match_torch():
    lib = cpu.compile(SOURCE)
    assert set(lib.names) == {"relu", "row_sum"}

    x = torch.randn(10_000)
    out = torch.empty_like(x)
    assert lib.relu(x, out, x.numel()) is None
    torch.testing.assert_close(out, torch.relu(x))

    matrix = torch.randn(300, 77, dtype=torch.float64)
    sums = torch.empty(300, dtype=torch.float64)
    threads = lib["row_sum"](matrix, sums, 300, 77)
    assert threads >= 1
    torch.testing.assert_close(sums, matrix.sum(dim=1))


def test_compiles_quickly_and_a_cache_hit_is_faster_and_the_same_file():
    source = SOURCE + f"\n// {uuid.uuid4()}\n"  # a source no cache has seen
    start = time.perf_counter()
    first = cpu.compile(source)
    compile_seconds = time.perf_counter() - start
    print(f"g++ compile: {compile_seconds:.3f} s")
    assert compile_seconds < 5

    start = time.perf_counter()
    second = cpu.compile(source)
    hit_seconds = time.perf_counter() - start
    print(f"cache hit: {hit_seconds:.4f} s")
    assert second.path == first.path and first.path.exists()
    assert hit_seconds < compile_seconds


def test_concurrent_compiles_of_one_source_agree():
    source = SOURCE + f"\n// {uuid.uuid4()}\n"
    paths, errors = [], []

    def build():
        try:
            paths.append(cpu.compile(source).path)
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(paths)) == 1
    assert not list(paths[0].parent.glob("*.tmp.so"))  # no temporary left behind


def test_syntax_error_raises_compile_error_with_compiler_message():
    broken = 'extern "C" void f(float* x) { x[0] = 1.0f }'
    with pytest.raises(CompileError) as caught:
        cpu.compile(broken)
    assert "error" in caught.value.log and "expected" in caught.value.log
    assert "expected" in str(caught.value)


def test_unsupported_signature_is_a_compile_error():
    with pytest.raises(CompileError, match="returns 'float2'"):
        cpu.compile('struct float2 { float x, y; };\nextern "C" float2 f(int n) { return {0, 0}; }')


def test_wrong_arguments_name_the_parameter():
    lib = cpu.compile(SOURCE)
    x = torch.randn(8)
    out = torch.empty(8)
    with pytest.raises(TypeError, match="'out'.*pass a tensor, not int"):
        lib.relu(x, 5, 8)
    with pytest.raises(TypeError, match="'n'.*is a scalar"):
        lib.relu(x, out, torch.tensor(8))
    with pytest.raises(TypeError, match="'n'.*needs an integer"):
        lib.relu(x, out, 8.0)
    with pytest.raises(TypeError, match="takes 3 arguments"):
        lib.relu(x, out)
    # A tensor on another device (meta stands in for CUDA on GPU-less machines) names the argument.
    with pytest.raises(TypeError, match="argument 0 \\('x'.*must be a tensor on cpu"):
        lib.relu(torch.empty(8, device="meta"), out, 8)
    with pytest.raises(AttributeError, match="no extern \"C\" function named 'nope'"):
        lib.nope


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA tensor")
def test_cuda_tensor_is_rejected():
    lib = cpu.compile(SOURCE)
    with pytest.raises(TypeError, match="'x'.*got one on cuda"):
        lib.relu(torch.randn(8, device="cuda"), torch.empty(8), 8)


def test_each_call_is_recorded_with_its_time():
    lib = cpu.compile(SOURCE)
    x = torch.randn(1000)
    out = torch.empty_like(x)
    for _ in range(3):
        lib.relu(x, out, x.numel())
    with pytest.raises(TypeError):
        lib.relu(x, out)  # rejected calls do not count
    totals = launches.snapshot()
    assert totals.count == {"relu": 3}
    assert totals.seconds["relu"] > 0


def test_available_reports_compiler_and_openmp():
    usable, reason = cpu.available()
    assert usable, reason
    assert "OpenMP" in reason
