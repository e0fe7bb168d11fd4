import sys

import pytest
import torch

from kernelwright.backends import CompileError, cuda, launches

pytest.importorskip("cuda.bindings.nvrtc")

SCALE = r"""
extern "C" __global__ void scale(const float* x, float* out, int n, float alpha) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = alpha * x[i];
}
"""

MANGLED = r"""
#include <cuda_fp16.h>
namespace ops {
template <typename T> __device__ T twice(T v) { return v + v; }
__global__ void double_half(const __half* x, __half* out, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) out[i] = twice(x[i]);
}
}
"""


pytestmark = pytest.mark.usefixtures("private_backend_state")


def test_valid_kernel_compiles_to_cubin_without_a_gpu():
    module = cuda.compile(SCALE, options=("-O3",))
    assert module.names == ("scale",)
    assert module.image_path.read_bytes()[:4] == b"\x7fELF"  # CUBIN, not PTX: no driver JIT
    assert [p.name for p in module.scale.params] == ["x", "out", "n", "alpha"]


def test_virtual_arch_gives_ptx():
    module = cuda.compile(SCALE, arch="compute_90")
    assert b".entry scale" in module.image_path.read_bytes()


def test_broken_kernel_raises_compile_error_with_nvrtc_log():
    broken = '__global__ void k(float* x) { x[0] = undefined_thing; }'
    with pytest.raises(CompileError) as caught:
        cuda.compile(broken)
    assert 'error: identifier "undefined_thing" is undefined' in caught.value.log


def test_unknown_option_is_a_compile_error():
    with pytest.raises(CompileError, match="NVRTC_ERROR_INVALID_OPTION") as caught:
        cuda.compile(SCALE, options=("--no-such-option",))
    assert "--no-such-option" in caught.value.log


def test_mangled_kernel_in_a_namespace_resolves():
    module = cuda.compile(MANGLED)
    kernel = module["double_half"]
    assert kernel._lowered_name.startswith("_ZN3ops11double_half")
    assert [p.ctype for p in kernel.params] == ["const __half*", "__half*", "long long"]


def test_templated_kernel_is_rejected_clearly():
    with pytest.raises(CompileError, match="'scale' is a template"):
        cuda.compile("template <typename T> __global__ void scale(T* x) { x[0] = T(1); }")


def test_cache_hit_skips_nvrtc(monkeypatch):
    first = cuda.compile(SCALE)

    def no_nvrtc(*args, **kwargs):
        raise AssertionError("NVRTC ran on a cache hit")

    monkeypatch.setattr(cuda, "_run_nvrtc", no_nvrtc)
    second = cuda.compile(SCALE)
    assert second.image_path == first.image_path
    with pytest.raises(AssertionError):
        cuda.compile(SCALE, options=("-O2",))  # different options, different key


def test_missing_cuda_python_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.bindings.nvrtc", None)  # makes the import fail
    cuda._nvrtc_version.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"kernelwright\[nvrtc\]"):
            cuda.compile(SCALE)
        assert cuda.nvrtc_version() is None
        assert cuda.available()[0] is False
    finally:
        cuda._nvrtc_version.cache_clear()


def test_available_and_version():
    usable, reason = cuda.available()
    assert usable, reason
    assert cuda.nvrtc_version() is not None and "NVRTC" in reason


def test_unknown_kernel_name_lists_the_kernels():
    module = cuda.compile(SCALE)
    with pytest.raises(AttributeError, match="no __global__ kernel named 'nope'.*scale"):
        module.nope


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the GPU-less error")
def test_launch_without_gpu_is_a_clear_error():
    module = cuda.compile(SCALE)
    x = torch.ones(4)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        module.scale[(1,), (32,)](x, x, 4, 2.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_scale_kernel_runs_on_the_gpu():
    module = cuda.compile(SCALE, options=("-O3",))
    n = 100_003
    x = torch.randn(n, device="cuda")
    out = torch.empty_like(x)
    module.scale[((n + 255) // 256,), (256,)](x, out, n, 3.0)
    module["scale"].launch((n + 255) // 256, 256, x, out, n, 3.0)
    torch.testing.assert_close(out, 3.0 * x)
    assert launches.snapshot().count == {"scale": 2}

    halves = torch.randn(1000, device="cuda", dtype=torch.float16)
    doubled = torch.empty_like(halves)
    cuda.compile(MANGLED).double_half[4, 256](halves, doubled, 1000)
    torch.testing.assert_close(doubled, halves * 2)

    with pytest.raises(TypeError, match="'x'.*must be a tensor on cuda"):
        module.scale[1, 32](x.cpu(), out, n, 3.0)
    with pytest.raises(TypeError, match="'n'.*needs an integer"):
        module.scale[1, 32](x, out, 1.5, 3.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_large_dynamic_shared_memory_is_opted_in():
    source = r"""
    extern "C" __global__ void reverse(const float* x, float* out, int n) {
        extern __shared__ float tile[];
        for (int i = threadIdx.x; i < n; i += blockDim.x) tile[i] = x[i];
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = tile[n - 1 - i];
    }
    """
    n = 20_000  # 80 KB of shared memory, above the 48 KB default
    x = torch.randn(n, device="cuda")
    out = torch.empty_like(x)
    cuda.compile(source).reverse[1, 256, n * 4](x, out, n)
    torch.testing.assert_close(out, x.flip(0))
