// polymath/core/macros.hpp — portability macros shared by CPU and CUDA code.
#pragma once

// Functions that must run identically on host and device (RNG, dtype
// conversions) are marked POLYMATH_HOST_DEVICE; outside nvcc it is empty.
#if defined(__CUDACC__)
#define POLYMATH_HOST_DEVICE __host__ __device__
#else
#define POLYMATH_HOST_DEVICE
#endif

#if defined(__GNUC__) || defined(__clang__)
#define POLYMATH_ALWAYS_INLINE inline __attribute__((always_inline))
#define POLYMATH_RESTRICT __restrict__
#else
#define POLYMATH_ALWAYS_INLINE inline
#define POLYMATH_RESTRICT
#endif
