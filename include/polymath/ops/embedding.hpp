// polymath/ops/embedding.hpp — row lookup in an embedding table (no autograd).
//
//   embedding(weight [V, D], indices of any shape) -> [indices..., D]
//   out[p, :] = weight[indices[p], :]
//
// padding_idx (-1: none) only affects the backward: the row padding_idx
// receives no gradient (its forward value is whatever the table holds, as in
// PyTorch). embedding_backward sums the gradient rows into a [V, D] table,
// deterministically (each table row adds its contributions in ascending
// index position, on any number of threads).
#pragma once
#include <cstdint>
#include <cstring>

#include "polymath/ops/index.hpp"

namespace polymath::ops {

namespace detail {
inline void check_embedding_args(const Shape& weight_shape, const Tensor<std::int64_t>& indices,
                                 std::int64_t padding_idx, const char* op) {
    POLYMATH_CHECK(weight_shape.size() == 2, op, "weight must be 2-D [num_embeddings, dim], got shape ", weight_shape);
    indices.check_defined(op);
    const std::int64_t V = weight_shape[0];
    POLYMATH_CHECK(padding_idx == -1 || (padding_idx >= 0 && padding_idx < V), op, "padding_idx ", padding_idx,
                   " is out of range for ", V, " embeddings (use -1 for none)");
    POLYMATH_CHECK(indices.dim() < kMaxDims, op, "indices of shape ", indices.shape(), " leave no room for the embedding dimension (at most ",
                   kMaxDims, " dimensions)");
}
inline void check_embedding_indices(const Tensor<std::int64_t>& indices, std::int64_t V, const char* op) {
    if (indices.numel() == 0) return;
    const std::int64_t* base = indices.storage()->data();
    indices.for_each_offset([&](std::int64_t off) {
        const std::int64_t v = base[off];
        POLYMATH_CHECK(v >= 0 && v < V, op, "index ", v, " is out of range for an embedding table of ", V,
                       " rows (valid: 0..", V - 1, ")", v < 0 ? "; negative indices are not supported" : "");
    });
}
inline Shape embedding_out_shape(const Shape& is, std::int64_t D) {
    Shape s = is;
    s.push_back(D);
    return s;
}
}  // namespace detail

template <class T>
Tensor<T> embedding(const Tensor<T>& weight, const Tensor<std::int64_t>& indices, std::int64_t padding_idx = -1) {
    weight.check_defined("embedding");
    detail::check_embedding_args(weight.shape(), indices, padding_idx, "embedding");
    const std::int64_t V = weight.shape()[0], D = weight.shape()[1];
    detail::check_embedding_indices(indices, V, "embedding");
    Tensor<T> out = Tensor<T>::empty(detail::embedding_out_shape(indices.shape(), D));
    if (out.numel() == 0) return out;
    const Tensor<T> w = weight.contiguous();
    const Tensor<std::int64_t> ic = indices.contiguous();
    const T* wp = w.data();
    const std::int64_t* ip = ic.data();
    T* op = out.data();
    const std::int64_t N = ic.numel();
    parallel_for(0, N, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(D, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t n = b; n < e; ++n)
                         std::memcpy(static_cast<void*>(op + n * D), static_cast<const void*>(wp + ip[n] * D),
                                     std::size_t(D) * sizeof(T));
                 });
    return out;
}

// Gradient w.r.t. the table: a [V, D] tensor, row v = sum of grad rows p with
// indices[p] == v (none for v == padding_idx). grad has shape [indices..., D].
template <class T>
Tensor<T> embedding_backward(const Tensor<T>& grad, const Tensor<std::int64_t>& indices, std::int64_t num_embeddings,
                             std::int64_t padding_idx = -1) {
    static_assert(kAddableIndexDType<T>, "embedding_backward: T must be float, double or an integer type");
    grad.check_defined("embedding_backward");
    POLYMATH_CHECK(grad.dim() == indices.dim() + 1, "embedding_backward", "gradient of shape ", grad.shape(),
                   " does not match indices of shape ", indices.shape(), " plus the embedding dimension");
    const std::int64_t D = grad.shape()[grad.dim() - 1];
    detail::check_embedding_args(Shape{num_embeddings, D}, indices, padding_idx, "embedding_backward");
    POLYMATH_CHECK(grad.shape() == detail::embedding_out_shape(indices.shape(), D), "embedding_backward",
                   "gradient of shape ", grad.shape(), " does not match indices of shape ", indices.shape(),
                   " plus the embedding dimension");
    detail::check_embedding_indices(indices, num_embeddings, "embedding_backward");
    Tensor<T> out = Tensor<T>::zeros({num_embeddings, D});
    const Tensor<T> gc = grad.contiguous();
    const Tensor<std::int64_t> ic = indices.contiguous();
    detail::index_add_rows(out.data(), gc.data(), 1, num_embeddings, ic.numel(), D, ic.data(), padding_idx);
    return out;
}

}  // namespace polymath::ops
