// polymath/cuda.hpp — the CUDA backend: Tensor<T, Cuda>, the caching device
// allocator, streams, checked CUDA/cuBLAS calls, and the CUDA ops.
//
// Include it from a .cu translation unit compiled by nvcc and link
// polymath::cuda (CUDA runtime + cuBLAS). CPU code keeps including
// polymath/polymath.hpp; a program may use both.
#pragma once
#if !defined(__CUDACC__)
#error "polymath/cuda.hpp must be included from a .cu file compiled by nvcc (link the CMake target polymath::cuda)"
#endif

#include "polymath/cuda/allocator.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"

// ops on Tensor<T, Cuda>: the CPU ops' names and semantics (ops/*.hpp)
#include "polymath/ops/cuda/attention.cuh"
#include "polymath/ops/cuda/blas.cuh"
#include "polymath/ops/cuda/conv.cuh"
#include "polymath/ops/cuda/dropout.cuh"
#include "polymath/ops/cuda/elementwise.cuh"
#include "polymath/ops/cuda/embedding.cuh"
#include "polymath/ops/cuda/grouped_gemm.cuh"
#include "polymath/ops/cuda/layer_norm.cuh"
#include "polymath/ops/cuda/loss.cuh"
#include "polymath/ops/cuda/matmul.cuh"
#include "polymath/ops/cuda/moe.cuh"
#include "polymath/ops/cuda/reduce.cuh"
#include "polymath/ops/cuda/softmax.cuh"
#include "polymath/ops/cuda/topk.cuh"

// fused multi-tensor optimizer steps
#include "polymath/optim/cuda/fused.cuh"
