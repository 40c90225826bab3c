// polymath/optim/clip.hpp — gradient clipping, as torch.nn.utils does it.
//
// clip_grad_norm_(params, max_norm, norm_type = 2, error_if_nonfinite = false)
//   Over every parameter with a defined grad() (others are ignored):
//     total = (sum over all gradient elements of |g|^norm_type)^(1/norm_type)
//             (norm_type = +inf: max |g|), accumulated in double;
//     clip_coef = max_norm / (total + 1e-6);
//     if clip_coef < 1: every gradient g = g * clip_coef.
//   Returns total (the norm BEFORE clipping). With error_if_nonfinite a NaN/inf
//   total throws polymath::Error and leaves the gradients alone; without it a
//   NaN total scales nothing (the comparison is false) and an infinite one
//   scales by 0, as torch's clamp would.
// clip_grad_value_(params, clip_value)
//   g = clamp(g, -clip_value, clip_value) for every defined gradient.
//
// "In place" means the parameter's grad() afterwards holds the clipped values.
// A gradient tensor the autograd engine shares with another tensor (it may
// alias an upstream gradient or be a broadcast view) is replaced by a private
// clipped copy rather than written through, so nothing else changes.
//
//   loss.backward();
//   double norm = optim::clip_grad_norm_(model.parameters(), 1.0);
//   opt.step();
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "polymath/optim/optimizer.hpp"

namespace polymath::optim {

namespace detail {

// Replaces v's gradient by f applied to it: in place when the gradient is
// private and contiguous, else into a fresh tensor. f(ArrayMap dst, CArrayMap src).
template <class T, class F>
void transform_grad(const Var<T>& v, F&& f) {
    auto& impl = *v.impl();
    const Tensor<T> g = impl.grad;
    const std::int64_t n = g.numel();
    if (impl.grad_owned && g.is_contiguous()) {
        T* d = g.data();
        for_chunks(n, [&](std::int64_t b, std::int64_t e) {
            ArrayMap<T> D(d + b, e - b);
            f(D, CArrayMap<T>(d + b, e - b));
        });
        return;
    }
    const Tensor<T> src = g.contiguous();
    Tensor<T> out = Tensor<T>::empty(g.shape());
    const T* s = src.data();
    T* d = out.data();
    for_chunks(n, [&](std::int64_t b, std::int64_t e) {
        ArrayMap<T> D(d + b, e - b);
        f(D, CArrayMap<T>(s + b, e - b));
    });
    impl.grad = std::move(out);
    impl.grad_owned = true;
}

template <class T>
std::vector<Var<T>> vars_of(const std::vector<nn::NamedParameter<T>>& params) {
    std::vector<Var<T>> out;
    out.reserve(params.size());
    for (const auto& p : params) out.push_back(p.var);
    return out;
}

}  // namespace detail

template <class T>
double clip_grad_norm_(const std::vector<Var<T>>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
    POLYMATH_CHECK(norm_type > 0 && !std::isnan(norm_type), "clip_grad_norm_",
                   "norm_type must be > 0 (or infinity), got ", norm_type);
    POLYMATH_CHECK(!std::isnan(max_norm), "clip_grad_norm_", "max_norm is NaN");
    std::vector<Var<T>> with_grad;
    for (const auto& v : params) {
        POLYMATH_CHECK(v.defined(), "clip_grad_norm_", "a parameter is an undefined Var");
        if (v.grad().defined()) with_grad.push_back(v);
    }
    if (with_grad.empty()) return 0.0;
    const bool inf_norm = std::isinf(norm_type);
    double acc = 0.0;  // sum |g|^p, or max |g|
    for (const auto& v : with_grad) {
        const Tensor<T> g = v.grad().contiguous();
        const T* x = g.data();
        const std::int64_t n = g.numel();
        if (inf_norm) {
            if (n == 0) continue;
            const detail::CArrayMap<T> X(x, n);
            const bool nan = X.isNaN().any();
            acc = nan ? std::numeric_limits<double>::quiet_NaN() : std::max(acc, double(X.abs().maxCoeff()));
            if (std::isnan(acc)) break;
        } else if (norm_type == 2.0) {
            acc += detail::sum_squares(x, n);
        } else if (norm_type == 1.0) {
            acc += detail::block_sum(n, [x](std::int64_t b, std::int64_t e) {
                return detail::CArrayMap<T>(x + b, e - b).template cast<double>().abs().sum();
            });
        } else {
            acc += detail::block_sum(n, [x, norm_type](std::int64_t b, std::int64_t e) {
                return detail::CArrayMap<T>(x + b, e - b).template cast<double>().abs().pow(norm_type).sum();
            });
        }
    }
    const double total = inf_norm ? acc : norm_type == 2.0 ? std::sqrt(acc)
                                          : norm_type == 1.0 ? acc
                                                             : std::pow(acc, 1.0 / norm_type);
    if (error_if_nonfinite)
        POLYMATH_CHECK(std::isfinite(total), "clip_grad_norm_", "the total norm of order ", norm_type,
                       " of the gradients is ", total,
                       " (non-finite); gradients left unchanged. Pass error_if_nonfinite=false to clip anyway");
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
        const T c = T(coef);
        for (const auto& v : with_grad) detail::transform_grad(v, [c](auto& d, const auto& s) { d = s * c; });
    }
    return total;
}

template <class T>
double clip_grad_norm_(const std::vector<nn::NamedParameter<T>>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
    return clip_grad_norm_(detail::vars_of(params), max_norm, norm_type, error_if_nonfinite);
}

template <class T>
void clip_grad_value_(const std::vector<Var<T>>& params, double clip_value) {
    POLYMATH_CHECK(clip_value >= 0, "clip_grad_value_", "clip_value must be >= 0, got ", clip_value);
    const T c = T(clip_value);
    for (const auto& v : params) {
        POLYMATH_CHECK(v.defined(), "clip_grad_value_", "a parameter is an undefined Var");
        if (!v.grad().defined()) continue;
        detail::transform_grad(v, [c](auto& d, const auto& s) { d = s.max(-c).min(c); });
    }
}

template <class T>
void clip_grad_value_(const std::vector<nn::NamedParameter<T>>& params, double clip_value) {
    clip_grad_value_(detail::vars_of(params), clip_value);
}

}  // namespace polymath::optim
