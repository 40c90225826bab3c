// CPU reference wrappers for tests/cuda/test_norm.cu (see norm_ref.hpp).
#include "norm_ref.hpp"

#include <polymath/polymath.hpp>

namespace polymath::normref {

namespace {
Reduction red_of(int r) { return r == 0 ? Reduction::None : r == 1 ? Reduction::Mean : Reduction::Sum; }
CrossEntropyOptions ce_opt(std::int64_t ign, double eps, int red) {
    CrossEntropyOptions o;
    o.ignore_index = ign;
    o.label_smoothing = eps;
    o.reduction = red_of(red);
    return o;
}
NllLossOptions nll_opt(std::int64_t ign, int red) {
    NllLossOptions o;
    o.ignore_index = ign;
    o.reduction = red_of(red);
    return o;
}
}  // namespace

#define POLYMATH_NORMREF_DEFINE(T)                                                                                     \
    Tensor<T> softmax(const Tensor<T>& x, std::int64_t axis) { return ops::softmax(x, axis); }                        \
    Tensor<T> log_softmax(const Tensor<T>& x, std::int64_t axis) { return ops::log_softmax(x, axis); }                \
    Tensor<T> softmax_backward(const Tensor<T>& g, const Tensor<T>& y, std::int64_t axis) {                          \
        return ops::softmax_backward(g, y, axis);                                                                     \
    }                                                                                                                 \
    Tensor<T> log_softmax_backward(const Tensor<T>& g, const Tensor<T>& y, std::int64_t axis) {                      \
        return ops::log_softmax_backward(g, y, axis);                                                                 \
    }                                                                                                                 \
    LayerNormRef<T> layer_norm_forward(const Tensor<T>& x, const Shape& ns, const Tensor<T>& w, const Tensor<T>& b,  \
                                       double eps) {                                                                  \
        auto f = ops::layer_norm_forward(x, ns, w, b, eps);                                                           \
        return {f.y, f.mean, f.rstd};                                                                                 \
    }                                                                                                                 \
    LayerNormGradsRef<T> layer_norm_backward(const Tensor<T>& g, const Tensor<T>& x, const Tensor<T>& mean,          \
                                             const Tensor<T>& rstd, const Shape& ns, const Tensor<T>& w, bool need_dx, \
                                             bool need_dw, bool need_db) {                                            \
        auto r = ops::layer_norm_backward(g, x, mean, rstd, ns, w, need_dx, need_dw, need_db);                        \
        return {r.dx, r.dweight, r.dbias};                                                                            \
    }                                                                                                                 \
    CrossEntropyRef<T> cross_entropy_forward(const Tensor<T>& logits, const Tensor<std::int64_t>& targets,          \
                                             std::int64_t ign, double eps, int red) {                                \
        auto f = ops::cross_entropy_forward(logits, targets, ce_opt(ign, eps, red));                                  \
        return {f.loss, f.lse, f.count};                                                                              \
    }                                                                                                                 \
    Tensor<T> cross_entropy_backward(const Tensor<T>& g, const Tensor<T>& logits,                                    \
                                     const Tensor<std::int64_t>& targets, const Tensor<T>& lse, std::int64_t count,  \
                                     std::int64_t ign, double eps, int red) {                                        \
        return ops::cross_entropy_backward(g, logits, targets, lse, count, ce_opt(ign, eps, red));                    \
    }                                                                                                                 \
    Tensor<T> nll_loss(const Tensor<T>& lp, const Tensor<std::int64_t>& targets, std::int64_t ign, int red) {       \
        return ops::nll_loss(lp, targets, nll_opt(ign, red));                                                         \
    }                                                                                                                 \
    Tensor<T> nll_loss_backward(const Tensor<T>& g, const Tensor<T>& lp, const Tensor<std::int64_t>& targets,        \
                                std::int64_t ign, int red) {                                                          \
        return ops::nll_loss_backward(g, lp, targets, nll_opt(ign, red));                                             \
    }                                                                                                                 \
    Tensor<T> mse_loss(const Tensor<T>& a, const Tensor<T>& b, int red) { return ops::mse_loss(a, b, red_of(red)); }  \
    MseGradsRef<T> mse_loss_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b, int red) {          \
        auto r = ops::mse_loss_backward(g, a, b, red_of(red));                                                        \
        return {r.da, r.db};                                                                                          \
    }

POLYMATH_NORMREF_DEFINE(float)
POLYMATH_NORMREF_DEFINE(double)
#undef POLYMATH_NORMREF_DEFINE

}  // namespace polymath::normref
