// polymath/tensor/xtensor.hpp — zero-copy views between host tensors and xtensor.
//
//   auto xa = polymath::as_xtensor(t);     // xt::adapt over the tensor's memory
//   auto t  = polymath::from_xtensor(xa);  // Tensor viewing an xtensor container
//
// Both directions share memory; from_xtensor needs a container with
// contiguous storage and non-negative strides, and the container must outlive
// the tensor (or pass keep_alive). Kept out of polymath.hpp because xtensor's
// headers are heavy: include it where you need it.
#pragma once
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "polymath/tensor/tensor.hpp"

namespace polymath {

// Adapts the tensor's memory (with its strides) as an xtensor expression.
template <class T>
auto as_xtensor(const Tensor<T, Cpu>& t) {
    t.check_defined("as_xtensor");
    std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
    std::vector<std::ptrdiff_t> strides(t.strides().begin(), t.strides().end());
    std::size_t extent = t.numel() ? 1 : 0;
    for (int i = 0; i < t.dim(); ++i)
        if (t.shape()[i] > 0) extent += static_cast<std::size_t>((t.shape()[i] - 1) * t.strides()[i]);
    return xt::adapt(t.data(), extent, xt::no_ownership(), shape, strides);
}

// A tensor viewing an xtensor container's memory (no copy).
template <class E>
auto from_xtensor(E& x, std::shared_ptr<void> keep_alive = {}) {
    using T = typename E::value_type;
    Shape s;
    Strides st;
    for (std::size_t i = 0; i < x.dimension(); ++i) {
        s.push_back(static_cast<std::int64_t>(x.shape()[i]));
        // xtensor reports stride 0 for extent-1 dims; any value is valid there.
        st.push_back(static_cast<std::int64_t>(x.strides()[i]));
        POLYMATH_CHECK(st.back() >= 0, "from_xtensor", "negative strides are not supported (shape ", s, ")");
    }
    return Tensor<T, Cpu>::from_blob(x.data() + x.data_offset(), s, st, std::move(keep_alive));
}

}  // namespace polymath
