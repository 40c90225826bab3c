// polymath/ops/view_ops.hpp — backward kernels of the Tensor views (no autograd).
//
// The views themselves are Tensor members (tensor/tensor.hpp). Their
// gradients map the output gradient back to the input's geometry:
//   reshape / view / flatten / squeeze / unsqueeze  -> g.reshape(input shape)
//   permute / transpose                              -> g.permute(inverse)
//   expand                                           -> sum_to(g, input shape)
//   slice / narrow / select                          -> zeros(input shape) with g
//                                                       copied into the same view
#pragma once
#include <cstdint>
#include <vector>

#include "polymath/ops/reduce.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

// inv such that x.permute(dims).permute(inv) has x's geometry.
inline std::vector<std::int64_t> inverse_permutation(const std::vector<std::int64_t>& dims, int ndim) {
    POLYMATH_CHECK(int(dims.size()) == ndim, "permute", "got ", dims.size(), " axes for a tensor of rank ", ndim);
    std::vector<std::int64_t> inv(dims.size(), -1);
    for (std::size_t i = 0; i < dims.size(); ++i) {
        const int a = normalize_axis(dims[i], ndim, "permute");
        POLYMATH_CHECK(inv[std::size_t(a)] < 0, "permute", "axis ", dims[i], " repeated in the permutation");
        inv[std::size_t(a)] = std::int64_t(i);
    }
    return inv;
}

// zeros(in_shape) with g copied into view(zeros): the backward of any view
// that picks a subset of the input's elements (slice, narrow, select).
template <class T, class ViewFn>
Tensor<T> embed_in_zeros(const Tensor<T>& g, const Shape& in_shape, ViewFn&& view) {
    Tensor<T> z = Tensor<T>::zeros(in_shape);
    Tensor<T> v = view(z);
    v.copy_(g);
    return z;
}

template <class T>
Tensor<T> slice_backward(const Tensor<T>& g, const Shape& in_shape, std::int64_t axis, std::int64_t start,
                         std::int64_t end, std::int64_t step = 1) {
    return embed_in_zeros(g, in_shape, [&](const Tensor<T>& z) { return z.slice(axis, start, end, step); });
}
template <class T>
Tensor<T> narrow_backward(const Tensor<T>& g, const Shape& in_shape, std::int64_t axis, std::int64_t start,
                          std::int64_t length) {
    return embed_in_zeros(g, in_shape, [&](const Tensor<T>& z) { return z.narrow(axis, start, length); });
}
template <class T>
Tensor<T> select_backward(const Tensor<T>& g, const Shape& in_shape, std::int64_t axis, std::int64_t index) {
    return embed_in_zeros(g, in_shape, [&](const Tensor<T>& z) { return z.select(axis, index); });
}
template <class T>
Tensor<T> permute_backward(const Tensor<T>& g, const std::vector<std::int64_t>& dims) {
    return g.permute(inverse_permutation(dims, g.dim()));
}
template <class T>
Tensor<T> expand_backward(const Tensor<T>& g, const Shape& in_shape) {
    return sum_to(g, in_shape);
}

}  // namespace polymath::ops
