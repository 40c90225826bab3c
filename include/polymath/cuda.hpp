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
