"""Fused SiLU + residual in CUDA C++ through torch.utils.cpp_extension.load_inline (KernelBench style)."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>

__global__ void swish_residual_kernel(const float* __restrict__ x, const float* __restrict__ r,
                                      float* __restrict__ y, long n) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        y[i] = v / (1.0f + __expf(-v)) + r[i];
    }
}

torch::Tensor swish_residual_cuda(torch::Tensor x, torch::Tensor r) {
    auto y = torch::empty_like(x);
    long n = x.numel();
    const int threads = 256;
    swish_residual_kernel<<<(n + threads - 1) / threads, threads>>>(
        x.data_ptr<float>(), r.data_ptr<float>(), y.data_ptr<float>(), n);
    return y;
}
"""
cpp_source = "torch::Tensor swish_residual_cuda(torch::Tensor x, torch::Tensor r);"

swish_residual = load_inline(
    name="kernelwright_swish_residual",
    cpp_sources=cpp_source,
    cuda_sources=cuda_source,
    functions=["swish_residual_cuda"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.swish_residual = swish_residual

    def forward(self, x, r):
        return self.swish_residual.swish_residual_cuda(x.contiguous(), r.contiguous())
