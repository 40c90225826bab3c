// Shared by the CUDA test files: skipping without a device, and comparing a
// device result with a host reference.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <type_traits>

#include <polymath/cuda/runtime.hpp>
#include <polymath/tensor/tensor.hpp>

namespace polymath::test {

// Counts GPU test cases that returned early; main.cpp prints the total.
inline int& gpu_skips() {
    static int n = 0;
    return n;
}

// Exact for every dtype (16-bit floats widen through float, doubles stay doubles).
template <class T>
double as_double(T v) {
    if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, half>) return double(float(v));
    else return double(v);
}

// Largest |a - b| / (atol + rtol * |b|) over all elements: <= 1 means "close".
// a and b are host tensors of equal shape; NaN anywhere fails.
template <class T>
double close_ratio(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, double rtol, double atol) {
    REQUIRE(a.shape() == b.shape());
    const auto va = a.to_vector(), vb = b.to_vector();
    double worst = 0;
    for (std::size_t i = 0; i < va.size(); ++i) {
        const double x = as_double(va[i]), y = as_double(vb[i]);
        if (std::isnan(x) != std::isnan(y)) return INFINITY;
        if (std::isnan(x)) continue;
        if (std::isinf(x) || std::isinf(y)) {
            if (x != y) return INFINITY;
            continue;
        }
        worst = std::max(worst, std::abs(x - y) / (atol + rtol * std::abs(y)));
    }
    return worst;
}

}  // namespace polymath::test

// First statement of every test case that needs a device.
#define POLYMATH_REQUIRE_GPU()                              \
    do {                                                    \
        if (!::polymath::cuda::is_available()) {            \
            ++::polymath::test::gpu_skips();                \
            return;                                         \
        }                                                   \
    } while (0)

// Device tensor `dev` (any dtype) close to host tensor `ref` elementwise.
#define POLYMATH_CHECK_CLOSE(dev, ref, rtol, atol)                                                    \
    do {                                                                                              \
        const double pm_ratio_ = ::polymath::test::close_ratio((dev), (ref), (rtol), (atol));         \
        INFO("worst |gpu - cpu| / (atol + rtol |cpu|) = ", pm_ratio_, " (rtol ", (rtol), ", atol ", (atol), ")"); \
        CHECK(pm_ratio_ <= 1.0);                                                                      \
    } while (0)
