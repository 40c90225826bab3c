// polymath/ops/reduce.hpp — reductions over any set of axes, with keepdim.
//
// Every reduction is brought to the form [O, R, I]: O outer, R reduced, I
// inner (the reduced axes permuted to one contiguous block when they are not
// one). I == 1 reduces contiguous rows (Eigen's vectorised sum / maxCoeff);
// I > 1 accumulates whole rows of I elements into the output (vectorised
// adds), which is the fast way to sum over a leading axis. Work is split over
// O, or over chunks of R when O is too small to keep threads busy.
//
// max and min propagate NaN (like PyTorch); sum of an empty range is 0, max or
// min of one throws.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "polymath/ops/elementwise.hpp"

namespace polymath::ops {

// Sorted unique axes in [0, ndim); an empty list means all axes.
inline std::vector<int> normalize_axes(const std::vector<std::int64_t>& axes, int ndim, const char* op) {
    std::vector<int> out;
    if (axes.empty()) {
        out.resize(static_cast<std::size_t>(ndim));
        std::iota(out.begin(), out.end(), 0);
        return out;
    }
    for (auto a : axes) out.push_back(normalize_axis(a, ndim, op));
    std::sort(out.begin(), out.end());
    for (std::size_t i = 1; i < out.size(); ++i)
        POLYMATH_CHECK(out[i] != out[i - 1], op, "axis ", out[i], " repeated in the reduction axes");
    if (ndim == 0) out.clear();
    return out;
}

// Shape of a reduction result.
inline Shape reduced_shape(const Shape& s, const std::vector<int>& axes, bool keepdim) {
    Shape out;
    std::size_t k = 0;
    for (int d = 0; d < s.size(); ++d) {
        const bool red = k < axes.size() && axes[k] == d;
        if (red) ++k;
        if (!red)
            out.push_back(s[d]);
        else if (keepdim)
            out.push_back(1);
    }
    return out;
}

namespace detail {

struct SumReducer {
    static constexpr const char* name = "sum";
    static constexpr bool needs_nonempty = false;
    template <class T>
    static T identity() { return T(0); }
    template <class E>
    static auto row(const E& e) { return e.sum(); }
    template <class O, class E>
    static void combine(O& o, const E& e) { o += e; }
    template <class T>
    static T combine(T a, T b) { return a + b; }
};
struct MaxReducer {
    static constexpr const char* name = "max";
    static constexpr bool needs_nonempty = true;
    template <class T>
    static T identity() { return -std::numeric_limits<T>::infinity(); }
    template <class E>
    static auto row(const E& e) { return e.template maxCoeff<Eigen::PropagateNaN>(); }
    template <class O, class E>
    static void combine(O& o, const E& e) {
        using T = typename O::Scalar;
        o = o.binaryExpr(e, Eigen::internal::scalar_max_op<T, T, Eigen::PropagateNaN>());
    }
    template <class T>
    static T combine(T a, T b) { return (std::isnan(a) || a > b) ? a : b; }
};
struct MinReducer {
    static constexpr const char* name = "min";
    static constexpr bool needs_nonempty = true;
    template <class T>
    static T identity() { return std::numeric_limits<T>::infinity(); }
    template <class E>
    static auto row(const E& e) { return e.template minCoeff<Eigen::PropagateNaN>(); }
    template <class O, class E>
    static void combine(O& o, const E& e) {
        using T = typename O::Scalar;
        o = o.binaryExpr(e, Eigen::internal::scalar_min_op<T, T, Eigen::PropagateNaN>());
    }
    template <class T>
    static T combine(T a, T b) { return (std::isnan(a) || a < b) ? a : b; }
};

// x viewed as [O, R, I] (contiguous) plus the result shape.
template <class T>
struct ORI {
    Tensor<T> x;  // contiguous
    std::int64_t O = 1, R = 1, I = 1;
};

template <class T>
ORI<T> to_ori(const Tensor<T>& x, const std::vector<int>& axes) {
    ORI<T> r;
    const int nd = x.dim();
    const bool block = axes.empty() || axes.back() - axes.front() + 1 == static_cast<int>(axes.size());
    Tensor<T> src = x;
    std::vector<int> red = axes;
    if (!block) {  // move the reduced axes to the end
        std::vector<std::int64_t> perm;
        std::size_t k = 0;
        for (int d = 0; d < nd; ++d) {
            if (k < axes.size() && axes[k] == d) {
                ++k;
                continue;
            }
            perm.push_back(d);
        }
        for (int a : axes) perm.push_back(a);
        src = x.permute(perm);
        red.clear();
        for (int i = nd - static_cast<int>(axes.size()); i < nd; ++i) red.push_back(i);
    }
    r.x = src.contiguous();
    if (red.empty()) {
        r.O = r.x.numel();
        return r;
    }
    for (int d = 0; d < red.front(); ++d) r.O *= r.x.shape()[d];
    for (int a : red) r.R *= r.x.shape()[a];
    for (int d = red.back() + 1; d < nd; ++d) r.I *= r.x.shape()[d];
    return r;
}

template <class Red, class T>
void reduce_ori(const ORI<T>& in, T* out) {
    const T* x = in.x.data();
    const std::int64_t O = in.O, R = in.R, I = in.I;
    if (I == 1) {
        if (O >= num_threads() * 4 || O * R <= kReductionGrain) {
            parallel_for(0, O, std::max<std::int64_t>(1, kReductionGrain / std::max<std::int64_t>(R, 1)),
                         [&](std::int64_t b, std::int64_t e) {
                             for (std::int64_t o = b; o < e; ++o)
                                 out[o] = R ? T(Red::row(CVecMap<T>(x + o * R, R))) : Red::template identity<T>();
                         });
        } else {  // few long rows: split each row over threads, then combine partials
            const std::int64_t chunks = std::min<std::int64_t>(num_threads() * 4, (R + kReductionGrain - 1) / kReductionGrain);
            const std::int64_t len = (R + chunks - 1) / chunks;
            std::vector<T> part(static_cast<std::size_t>(O * chunks));
            parallel_for(0, O * chunks, 1, [&](std::int64_t b, std::int64_t e) {
                for (std::int64_t k = b; k < e; ++k) {
                    const std::int64_t o = k / chunks, c = k % chunks;
                    const std::int64_t lo = c * len, hi = std::min(R, lo + len);
                    part[std::size_t(k)] = hi > lo ? T(Red::row(CVecMap<T>(x + o * R + lo, hi - lo))) : Red::template identity<T>();
                }
            });
            for (std::int64_t o = 0; o < O; ++o) {
                T acc = part[std::size_t(o * chunks)];
                for (std::int64_t c = 1; c < chunks; ++c) acc = Red::combine(acc, part[std::size_t(o * chunks + c)]);
                out[o] = acc;
            }
        }
        return;
    }
    // I > 1: out[o, i] = reduce_r x[o, r, i], row by row; split over (o, i-chunk).
    // Wide column chunks keep the row reads sequential; split I only as much
    // as the threads need.
    const std::int64_t ichunk = std::min<std::int64_t>(
        I, std::max<std::int64_t>(1024, (I + 2 * num_threads() - 1) / (2 * num_threads())));
    const std::int64_t nic = (I + ichunk - 1) / ichunk;
    // acc[0..n) = reduce over rows [r0, r1) (r1 > r0) of x[o, :, i0..i0+n).
    auto reduce_rows = [&](std::int64_t o, std::int64_t i0, std::int64_t n, std::int64_t r0, std::int64_t r1, T* dst) {
        VecMap<T> acc(dst, n);
        auto row = [&](std::int64_t r) { return CVecMap<T>(x + (o * R + r) * I + i0, n); };
        acc = row(r0);
        std::int64_t r = r0 + 1;
        if constexpr (std::is_same_v<Red, SumReducer>)  // 4 rows per pass over acc
            for (; r + 4 <= r1; r += 4) acc += (row(r) + row(r + 1)) + (row(r + 2) + row(r + 3));
        for (; r < r1; ++r) Red::combine(acc, row(r));
    };
    if (R == 0) {
        VecMap<T>(out, O * I).setConstant(Red::template identity<T>());
        return;
    }
    const int nt = num_threads();
    if (O * nic == 1 && nt > 1 && R >= 64 && R * I > 4 * kReductionGrain) {
        // One narrow output row: split the reduced axis over threads, then
        // combine the partial rows in a fixed order.
        const std::int64_t chunks = std::min<std::int64_t>(nt, R / 32), len = (R + chunks - 1) / chunks;
        std::vector<T> part(static_cast<std::size_t>((chunks - 1) * I));
        parallel_for(0, chunks, 1, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t c = b; c < e; ++c)
                reduce_rows(0, 0, I, c * len, std::min(R, (c + 1) * len), c == 0 ? out : part.data() + (c - 1) * I);
        });
        VecMap<T> acc(out, I);
        for (std::int64_t c = 1; c < chunks; ++c) Red::combine(acc, CVecMap<T>(part.data() + (c - 1) * I, I));
        return;
    }
    parallel_for(0, O * nic, std::max<std::int64_t>(1, kReductionGrain / std::max<std::int64_t>(R * ichunk, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t k = b; k < e; ++k) {
                         const std::int64_t o = k / nic, i0 = (k % nic) * ichunk;
                         reduce_rows(o, i0, std::min(ichunk, I - i0), 0, R, out + o * I + i0);
                     }
                 });
}

template <class Red, class T>
Tensor<T> reduce(const Tensor<T>& x, const std::vector<std::int64_t>& axes, bool keepdim) {
    static_assert(MathDType<T>, "polymath reductions compute in float or double; convert with .to<float>() first");
    x.check_defined(Red::name);
    const std::vector<int> ax = normalize_axes(axes, x.dim(), Red::name);
    const ORI<T> ori = to_ori(x, ax);
    if constexpr (Red::needs_nonempty)
        POLYMATH_CHECK(ori.R > 0 || ori.O * ori.I == 0, Red::name, "cannot reduce over an empty range (shape ",
                       x.shape(), ")");
    Tensor<T> out = Tensor<T>::empty(reduced_shape(x.shape(), ax, keepdim));
    if (out.numel() > 0) reduce_ori<Red>(ori, out.data());
    return out;
}

}  // namespace detail

template <class T>
Tensor<T> sum(const Tensor<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    return detail::reduce<detail::SumReducer>(x, axes, keepdim);
}
template <class T>
Tensor<T> amax(const Tensor<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    return detail::reduce<detail::MaxReducer>(x, axes, keepdim);
}
template <class T>
Tensor<T> amin(const Tensor<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    return detail::reduce<detail::MinReducer>(x, axes, keepdim);
}
// Number of elements a reduction over `axes` combines.
template <class T>
std::int64_t reduced_count(const Tensor<T>& x, const std::vector<std::int64_t>& axes, const char* op) {
    std::int64_t n = 1;
    for (int a : normalize_axes(axes, x.dim(), op)) n *= x.shape()[a];
    return n;
}
template <class T>
Tensor<T> mean(const Tensor<T>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    const std::int64_t n = reduced_count(x, axes, "mean");
    POLYMATH_CHECK(n > 0, "mean", "cannot average over an empty range (shape ", x.shape(), ")");
    Tensor<T> s = sum(x, axes, keepdim);
    const T inv = T(1) / T(n);
    VecMap<T>(s.data(), s.numel()) *= inv;
    return s;
}
// Variance with Bessel-style `correction` (1: unbiased, like torch.var).
template <class T>
Tensor<T> var(const Tensor<T>& x, const std::vector<std::int64_t>& axes = {}, std::int64_t correction = 1,
              bool keepdim = false) {
    const std::int64_t n = reduced_count(x, axes, "var");
    POLYMATH_CHECK(n - correction > 0, "var", "needs more than ", correction, " elements per reduction, got ", n,
                   " (shape ", x.shape(), ")");
    const Tensor<T> m = mean(x, axes, true);
    const Tensor<T> sq = binary_map<T>("var", x, m, [](const auto& a, const auto& b) { return (a - b).square(); });
    Tensor<T> s = sum(sq, axes, keepdim);
    VecMap<T>(s.data(), s.numel()) *= T(1) / T(n - correction);
    return s;
}

// Index of the largest element along `axis` (first one on ties; NaN counts as
// largest, like PyTorch).
template <class T>
Tensor<std::int64_t> argmax(const Tensor<T>& x, std::int64_t axis, bool keepdim = false) {
    x.check_defined("argmax");
    const int a = normalize_axis(axis, x.dim(), "argmax");
    const std::vector<int> ax = x.dim() ? std::vector<int>{a} : std::vector<int>{};
    const detail::ORI<T> ori = detail::to_ori(x, ax);
    POLYMATH_CHECK(ori.R > 0 || ori.O * ori.I == 0, "argmax", "cannot take argmax over an empty axis (shape ",
                   x.shape(), ")");
    Tensor<std::int64_t> out = Tensor<std::int64_t>::empty(reduced_shape(x.shape(), ax, keepdim));
    const T* p = ori.x.data();
    std::int64_t* o = out.data();
    const std::int64_t R = ori.R, I = ori.I;
    parallel_for(0, ori.O * I, std::max<std::int64_t>(1, kReductionGrain / std::max<std::int64_t>(R, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t k = b; k < e; ++k) {
                         const std::int64_t oo = k / I, i = k % I;
                         const T* base = p + oo * R * I + i;
                         std::int64_t best = 0;
                         T bv = base[0];
                         for (std::int64_t r = 1; r < R && !std::isnan(bv); ++r) {
                             const T v = base[r * I];
                             if (v > bv || std::isnan(v)) {
                                 bv = v;
                                 best = r;
                             }
                         }
                         o[k] = best;
                     }
                 });
    return out;
}

// Sums a broadcast result back to `shape` (the backward of broadcasting).
template <class T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& shape) {
    if (g.shape() == shape) return g;
    const int lead = g.dim() - shape.size();
    POLYMATH_CHECK(lead >= 0, "sum_to", "cannot reduce shape ", g.shape(), " to ", shape);
    std::vector<std::int64_t> axes;
    for (int d = 0; d < g.dim(); ++d) {
        if (d < lead) {
            axes.push_back(d);
            continue;
        }
        const std::int64_t want = shape[d - lead];
        if (want == 1 && g.shape()[d] != 1) axes.push_back(d);
        else
            POLYMATH_CHECK(want == g.shape()[d], "sum_to", "cannot reduce shape ", g.shape(), " to ", shape);
    }
    if (axes.empty()) return g.reshape(shape);
    return sum(g, axes, true).reshape(shape);
}

}  // namespace polymath::ops
