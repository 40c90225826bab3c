// polymath/ops/softmax.hpp — softmax / log_softmax over one axis, and their
// backward kernels (no autograd).
//
//   softmax(x, axis)      y = exp(x - max) / sum(exp(x - max))
//   log_softmax(x, axis)  y = x - max - log(sum(exp(x - max)))
//   softmax_backward(g, y, axis)      gx = y * (g - sum(g * y, axis))
//   log_softmax_backward(g, y, axis)  gx = g - exp(y) * sum(g, axis)
//
// The input is read as a contiguous [O, R, I] block (R the softmax axis).
// I == 1 (the last axis) runs row by row: max, exp-and-sum and the scaling
// are vectorised Eigen expressions over one row that stays in L1; rows are
// split over threads. I > 1 (any other axis) runs on whole rows of I
// elements at once (running max / sum vectors over R), so no transpose is
// ever materialised. Results are new contiguous tensors. NaN propagates; a
// row of all -inf gives NaN (like PyTorch).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "polymath/ops/elementwise.hpp"

namespace polymath::ops {

namespace detail {

// Elements of work per task for the softmax family (exp is ~10 flops).
inline constexpr std::int64_t kSoftmaxGrain = 16384;
// Columns processed together on the I > 1 path (keeps the temporaries in L1).
inline constexpr std::int64_t kSoftmaxColChunk = 1024;

struct SoftmaxSplit {
    std::int64_t O = 1, R = 1, I = 1;
};
inline SoftmaxSplit softmax_split(const Shape& s, int axis) {
    SoftmaxSplit r;
    if (s.size() == 0) return r;
    for (int d = 0; d < axis; ++d) r.O *= s[d];
    r.R = s[axis];
    for (int d = axis + 1; d < s.size(); ++d) r.I *= s[d];
    return r;
}

template <class T>
POLYMATH_ALWAYS_INLINE T row_max(const CVecMap<T>& x) {
    return x.template maxCoeff<Eigen::PropagateNaN>();
}

// Runs f(o, i0, n) over [O] x [I in chunks of kSoftmaxColChunk], threaded.
template <class F>
void softmax_for_each_col_chunk(const SoftmaxSplit& sp, F&& f) {
    const std::int64_t nic = (sp.I + kSoftmaxColChunk - 1) / kSoftmaxColChunk;
    const std::int64_t per = std::min(sp.I, kSoftmaxColChunk) * std::max<std::int64_t>(sp.R, 1);
    parallel_for(0, sp.O * nic, std::max<std::int64_t>(1, kSoftmaxGrain / std::max<std::int64_t>(per, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t k = b; k < e; ++k) {
                         const std::int64_t o = k / nic, i0 = (k % nic) * kSoftmaxColChunk;
                         f(o, i0, std::min(kSoftmaxColChunk, sp.I - i0));
                     }
                 });
}

template <class T>
void check_softmax_input(const Tensor<T>& x, const char* op) {
    static_assert(MathDType<T>, "polymath softmax computes in float or double; convert with .to<float>() first");
    x.check_defined(op);
}

template <class T, bool Log>
Tensor<T> softmax_impl(const Tensor<T>& x_in, std::int64_t axis, const char* op) {
    check_softmax_input(x_in, op);
    const int ax = normalize_axis(axis, x_in.dim(), op);
    const Tensor<T> x = x_in.contiguous();
    Tensor<T> y = Tensor<T>::empty(x.shape());
    const SoftmaxSplit sp = softmax_split(x.shape(), ax);
    if (x.numel() == 0) return y;
    const T* xp = x.data();
    T* yp = y.data();
    const std::int64_t R = sp.R, I = sp.I;
    if (I == 1) {
        parallel_for(0, sp.O, std::max<std::int64_t>(1, kSoftmaxGrain / R), [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t o = b; o < e; ++o) {
                const CVecMap<T> xr(xp + o * R, R);
                VecMap<T> yr(yp + o * R, R);
                const T m = row_max(xr);
                if constexpr (Log) {
                    const T lse = m + std::log((xr - m).exp().sum());
                    yr = xr - lse;
                } else {
                    yr = (xr - m).exp();  // exp-bound: a fused exp+sum packet loop measured no faster
                    yr *= T(1) / yr.sum();
                }
            }
        });
        return y;
    }
    softmax_for_each_col_chunk(sp, [&](std::int64_t o, std::int64_t i0, std::int64_t n) {
        auto xrow = [&](std::int64_t r) { return CVecMap<T>(xp + (o * R + r) * I + i0, n); };
        auto yrow = [&](std::int64_t r) { return VecMap<T>(yp + (o * R + r) * I + i0, n); };
        ArrayX<T> m = xrow(0);
        for (std::int64_t r = 1; r < R; ++r)
            m = m.binaryExpr(xrow(r), Eigen::internal::scalar_max_op<T, T, Eigen::PropagateNaN>());
        ArrayX<T> s = ArrayX<T>::Zero(n);
        if constexpr (Log) {
            for (std::int64_t r = 0; r < R; ++r) s += (xrow(r) - m).exp();
            m += s.log();  // m is now the log-sum-exp
            for (std::int64_t r = 0; r < R; ++r) yrow(r) = xrow(r) - m;
        } else {
            for (std::int64_t r = 0; r < R; ++r) {
                auto yr = yrow(r);
                yr = (xrow(r) - m).exp();
                s += yr;
            }
            s = s.inverse();
            for (std::int64_t r = 0; r < R; ++r) yrow(r) *= s;
        }
    });
    return y;
}

// gx from g and the forward output y (Log: y is log_softmax).
template <class T, bool Log>
Tensor<T> softmax_backward_impl(const Tensor<T>& g_in, const Tensor<T>& y_in, std::int64_t axis, const char* op) {
    check_softmax_input(y_in, op);
    g_in.check_defined(op);
    POLYMATH_CHECK(g_in.shape() == y_in.shape(), op, "gradient of shape ", g_in.shape(),
                   " does not match the output shape ", y_in.shape());
    const int ax = normalize_axis(axis, y_in.dim(), op);
    const Tensor<T> y = y_in.contiguous(), g = g_in.contiguous();
    Tensor<T> gx = Tensor<T>::empty(y.shape());
    const SoftmaxSplit sp = softmax_split(y.shape(), ax);
    if (y.numel() == 0) return gx;
    const T* yp = y.data();
    const T* gp = g.data();
    T* op_ = gx.data();
    const std::int64_t R = sp.R, I = sp.I;
    if (I == 1) {
        parallel_for(0, sp.O, std::max<std::int64_t>(1, kSoftmaxGrain / R), [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t o = b; o < e; ++o) {
                const CVecMap<T> yr(yp + o * R, R), gr(gp + o * R, R);
                VecMap<T> xr(op_ + o * R, R);
                if constexpr (Log) {
                    const T s = gr.sum();
                    xr = gr - yr.exp() * s;
                } else {
                    const T dot = (gr * yr).sum();
                    xr = yr * (gr - dot);
                }
            }
        });
        return gx;
    }
    softmax_for_each_col_chunk(sp, [&](std::int64_t o, std::int64_t i0, std::int64_t n) {
        auto row = [&](const T* p, std::int64_t r) { return CVecMap<T>(p + (o * R + r) * I + i0, n); };
        ArrayX<T> s = ArrayX<T>::Zero(n);
        if constexpr (Log) {
            for (std::int64_t r = 0; r < R; ++r) s += row(gp, r);
            for (std::int64_t r = 0; r < R; ++r)
                VecMap<T>(op_ + (o * R + r) * I + i0, n) = row(gp, r) - row(yp, r).exp() * s;
        } else {
            for (std::int64_t r = 0; r < R; ++r) s += row(gp, r) * row(yp, r);
            for (std::int64_t r = 0; r < R; ++r)
                VecMap<T>(op_ + (o * R + r) * I + i0, n) = row(yp, r) * (row(gp, r) - s);
        }
    });
    return gx;
}

}  // namespace detail

template <class T>
Tensor<T> softmax(const Tensor<T>& x, std::int64_t axis = -1) {
    return detail::softmax_impl<T, false>(x, axis, "softmax");
}
template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, std::int64_t axis = -1) {
    return detail::softmax_impl<T, true>(x, axis, "log_softmax");
}
// gx = y * (g - sum(g * y, axis)), y = softmax(x, axis).
template <class T>
Tensor<T> softmax_backward(const Tensor<T>& g, const Tensor<T>& y, std::int64_t axis) {
    return detail::softmax_backward_impl<T, false>(g, y, axis, "softmax_backward");
}
// gx = g - exp(y) * sum(g, axis), y = log_softmax(x, axis).
template <class T>
Tensor<T> log_softmax_backward(const Tensor<T>& g, const Tensor<T>& y, std::int64_t axis) {
    return detail::softmax_backward_impl<T, true>(g, y, axis, "log_softmax_backward");
}

}  // namespace polymath::ops
