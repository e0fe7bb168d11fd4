import ctypes

import pytest
import torch

from kernelwright.backends.signature import SignatureError, bind_args, parse_functions, parse_signatures

CUDA_SOURCE = r"""
#include <cuda_fp16.h>
#define BLOCK 256
// __global__ void in_a_comment(int x) {}
/* __global__ void in_a_block_comment(int x) {} */
__device__ float twice(float v) { return 2.0f * v; }

extern "C" __global__ void scale(const float* __restrict__ x, float *out, int n, float alpha) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { out[i] = alpha * twice(x[i]); }
}

namespace ops { namespace inner {
__global__ void __launch_bounds__(256, 2) sum_rows(const __half* x, float* out, size_t rows, long long cols);
__global__ void __launch_bounds__(256, 2) sum_rows(const __half* x, float* out, size_t rows, long long cols) {}
} }

__global__ void no_params(void) {}
__global__ void array_param(float values[], unsigned count, bool flag, double d, int64_t big) {}
"""


def test_global_kernels_are_found_with_their_parameters():
    functions = parse_functions(CUDA_SOURCE, "global")
    assert set(functions) == {"scale", "sum_rows", "no_params", "array_param"}

    x, out, n, alpha = functions["scale"]
    assert (x.name, x.ctype, x.is_pointer, x.ctypes_type) == ("x", "const float*", True, ctypes.c_void_p)
    assert (out.name, out.ctype, out.is_pointer) == ("out", "float*", True)
    assert (n.name, n.ctype, n.is_pointer, n.ctypes_type) == ("n", "int", False, ctypes.c_int)
    assert alpha.ctypes_type is ctypes.c_float

    assert [p.ctypes_type for p in functions["sum_rows"]] == [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_longlong
    ]
    assert functions["no_params"] == []
    values, count, flag, d, big = functions["array_param"]
    assert values.is_pointer and values.ctype == "float*"
    assert [count.ctypes_type, flag.ctypes_type, d.ctypes_type, big.ctypes_type] == [
        ctypes.c_uint, ctypes.c_bool, ctypes.c_double, ctypes.c_longlong
    ]


def test_namespaces_give_the_qualified_name_and_attributes_are_skipped():
    signatures = parse_signatures(CUDA_SOURCE, "global")
    assert signatures["sum_rows"].qualified_name == "ops::inner::sum_rows"
    assert signatures["sum_rows"].returns == "void"
    assert signatures["scale"].qualified_name == "scale"


def test_templated_kernels_are_rejected_clearly():
    source = "template <typename T, int N = 4>\n__global__ void scale(T* x, int n) {}"
    with pytest.raises(SignatureError, match="'scale' is a template"):
        parse_functions(source, "global")


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("__global__ void k(__half a) {}", "__half scalar"),
        ("__global__ void k(__nv_bfloat16 a) {}", "__nv_bfloat16 scalar"),
        ("__global__ void k(float2 a) {}", "type 'float2', which cannot be passed"),
        ("__global__ void k(float& a) {}", "reference"),
        ("__global__ void k(int a) {}\n__global__ void k(float a) {}", "overloaded"),
    ],
)
def test_unsupported_parameters_are_rejected_clearly(declaration, message):
    with pytest.raises(SignatureError, match=message):
        parse_functions(declaration, "global")


def test_extern_c_declarations_and_blocks():
    source = r"""
    #include <omp.h>
    static int helper(int v) { return v; }
    extern "C" void relu(const float* x, float* out, long n) { for (long i = 0; i < n; ++i) out[i] = x[i]; }
    extern "C" {
      struct Pair { int a; int b; };
      int counter = 3;
      typedef void (*callback)(int);
      double total(const double* x, int n) { double s = 0; for (int i = 0; i < n; ++i) { s += x[i]; } return s; }
      __attribute__((visibility("default"))) unsigned long long items(void);
    }
    """
    signatures = parse_signatures(source, "extern_c")
    assert set(signatures) == {"relu", "total", "items"}
    assert [p.ctype for p in signatures["relu"].params] == ["const float*", "float*", "long"]
    assert signatures["relu"].result_type is None
    assert signatures["total"].result_type is ctypes.c_double
    assert signatures["items"].params == [] and signatures["items"].result_type is ctypes.c_ulonglong


def test_unnamed_parameters_get_positional_names():
    (first, second) = parse_functions('extern "C" void f(const float*, unsigned int);', "extern_c")["f"]
    assert (first.name, first.ctype) == ("arg0", "const float*")
    assert (second.name, second.ctype, second.ctypes_type) == ("arg1", "unsigned int", ctypes.c_uint)


def test_bind_args_converts_and_checks():
    params = parse_functions('extern "C" void f(float* x, int n, double a, bool b);', "extern_c")["f"]
    x = torch.zeros(4)
    values, types = bind_args("function 'f'", params, (x, 4, 2, True), torch.device("cpu"))
    assert values == (x.data_ptr(), 4, 2.0, 1)
    assert types == (ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_bool)

    cpu = torch.device("cpu")
    with pytest.raises(TypeError, match="takes 4 arguments"):
        bind_args("function 'f'", params, (x, 4), cpu)
    with pytest.raises(TypeError, match="'x'.*is a pointer: pass a tensor"):
        bind_args("function 'f'", params, (123, 4, 2.0, True), cpu)
    with pytest.raises(TypeError, match="'n'.*is a scalar"):
        bind_args("function 'f'", params, (x, torch.tensor(4), 2.0, True), cpu)
    with pytest.raises(TypeError, match="'n'.*needs an integer"):
        bind_args("function 'f'", params, (x, 4.5, 2.0, True), cpu)
    with pytest.raises(TypeError, match="'n'.*outside \\[-2147483648, 2147483647\\]"):
        bind_args("function 'f'", params, (x, 2**40, 2.0, True), cpu)
    with pytest.raises(TypeError, match="'b'.*outside \\[0, 1\\]"):
        bind_args("function 'f'", params, (x, 4, 2.0, 2), cpu)
    with pytest.raises(TypeError, match="'x'.*must be a tensor on cpu, got one on meta"):
        bind_args("function 'f'", params, (torch.zeros(4, device="meta"), 4, 2.0, True), cpu)
