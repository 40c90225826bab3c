// CPU reference values for tests/cuda/test_norm.cu: thin wrappers over the CPU
// softmax / layer_norm / loss ops (defined in norm_ref.cpp, compiled by the
// host compiler, so the .cu file never includes the Eigen-based headers).
// reduction: 0 None, 1 Mean, 2 Sum (polymath::Reduction's order).
#pragma once
#include <cstdint>

#include <polymath/tensor/tensor.hpp>

namespace polymath::normref {

template <class T>
struct LayerNormRef {
    Tensor<T> y, mean, rstd;
};
template <class T>
struct LayerNormGradsRef {
    Tensor<T> dx, dweight, dbias;
};
template <class T>
struct CrossEntropyRef {
    Tensor<T> loss, lse;
    std::int64_t count = 0;
};
template <class T>
struct MseGradsRef {
    Tensor<T> da, db;
};

#define POLYMATH_NORMREF_DECLARE(T)                                                                                    \
    Tensor<T> softmax(const Tensor<T>& x, std::int64_t axis);                                                         \
    Tensor<T> log_softmax(const Tensor<T>& x, std::int64_t axis);                                                     \
    Tensor<T> softmax_backward(const Tensor<T>& g, const Tensor<T>& y, std::int64_t axis);                           \
    Tensor<T> log_softmax_backward(const Tensor<T>& g, const Tensor<T>& y, std::int64_t axis);                       \
    LayerNormRef<T> layer_norm_forward(const Tensor<T>& x, const Shape& ns, const Tensor<T>& w, const Tensor<T>& b,  \
                                       double eps);                                                                   \
    LayerNormGradsRef<T> layer_norm_backward(const Tensor<T>& g, const Tensor<T>& x, const Tensor<T>& mean,          \
                                             const Tensor<T>& rstd, const Shape& ns, const Tensor<T>& w, bool need_dx, \
                                             bool need_dw, bool need_db);                                             \
    CrossEntropyRef<T> cross_entropy_forward(const Tensor<T>& logits, const Tensor<std::int64_t>& targets,          \
                                             std::int64_t ignore_index, double smoothing, int reduction);            \
    Tensor<T> cross_entropy_backward(const Tensor<T>& g, const Tensor<T>& logits,                                    \
                                     const Tensor<std::int64_t>& targets, const Tensor<T>& lse, std::int64_t count,  \
                                     std::int64_t ignore_index, double smoothing, int reduction);                    \
    Tensor<T> nll_loss(const Tensor<T>& lp, const Tensor<std::int64_t>& targets, std::int64_t ignore_index,         \
                       int reduction);                                                                                \
    Tensor<T> nll_loss_backward(const Tensor<T>& g, const Tensor<T>& lp, const Tensor<std::int64_t>& targets,        \
                                std::int64_t ignore_index, int reduction);                                           \
    Tensor<T> mse_loss(const Tensor<T>& a, const Tensor<T>& b, int reduction);                                       \
    MseGradsRef<T> mse_loss_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b, int reduction);

POLYMATH_NORMREF_DECLARE(float)
POLYMATH_NORMREF_DECLARE(double)
#undef POLYMATH_NORMREF_DECLARE

}  // namespace polymath::normref
