// polymath/ops/topk.hpp — the k largest (or smallest) entries along an axis (no autograd).
//
//   auto [values, indices] = ops::topk(x, k, axis = -1, largest = true, sorted = true);
//
// values and indices have x's shape with `axis` of size k. Ties go to the
// lower index first; NaN counts as larger than every number (as in PyTorch),
// so it comes first when largest and last otherwise. sorted = true orders the
// k entries best first; sorted = false returns them in ascending index order.
// Each line along the axis is selected with std::nth_element / partial_sort;
// lines run in parallel.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "polymath/ops/index.hpp"

namespace polymath::ops {

template <class T>
struct TopK {
    Tensor<T> values;
    Tensor<std::int64_t> indices;
};

namespace detail {
template <class T>
bool topk_isnan(T v) {
    if constexpr (std::is_floating_point_v<T>)
        return std::isnan(v);
    else
        return false;
}
}  // namespace detail

template <class T>
TopK<T> topk(const Tensor<T>& x, std::int64_t k, std::int64_t axis = -1, bool largest = true, bool sorted = true) {
    static_assert(std::is_arithmetic_v<T>, "topk: T must be a floating-point or integer type");
    x.check_defined("topk");
    const Tensor<T> xs = x.dim() == 0 ? x.reshape({1}) : x;
    const int a = normalize_axis(axis, xs.dim(), "topk");
    const std::int64_t n = xs.shape()[a];
    POLYMATH_CHECK(k >= 0 && k <= n, "topk", "k = ", k, " is out of range for axis ", a, " of size ", n, " (shape ",
                   x.shape(), ")");
    Shape os = xs.shape();
    os[a] = k;
    TopK<T> r{Tensor<T>::empty(os), Tensor<std::int64_t>::empty(os)};
    if (r.values.numel() > 0) {
        const Tensor<T> xc = xs.contiguous();
        const detail::AxisSplit g = detail::split_at_axis(xc.shape(), a);
        const std::int64_t I = g.I;
        const T* xp = xc.data();
        T* vp = r.values.data();
        std::int64_t* ip = r.indices.data();
        parallel_for(0, g.O * I, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(n, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         std::vector<T> vals(static_cast<std::size_t>(n));
                         std::vector<std::int64_t> order(static_cast<std::size_t>(n));
                         // Strict total order: better value first, NaN as the largest, ties by index.
                         auto before = [&](std::int64_t p, std::int64_t q) {
                             const T vp_ = vals[std::size_t(p)], vq_ = vals[std::size_t(q)];
                             const bool np = detail::topk_isnan(vp_), nq = detail::topk_isnan(vq_);
                             if (np || nq) return np && nq ? p < q : (largest ? np : nq);
                             if (vp_ != vq_) return largest ? vp_ > vq_ : vp_ < vq_;
                             return p < q;
                         };
                         for (std::int64_t line = b; line < e; ++line) {
                             const std::int64_t o = line / I, i = line % I;
                             const T* src = xp + o * n * I + i;
                             for (std::int64_t j = 0; j < n; ++j) vals[std::size_t(j)] = src[j * I];
                             std::iota(order.begin(), order.end(), std::int64_t(0));
                             if (sorted) {
                                 std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
                             } else {
                                 if (k < n) std::nth_element(order.begin(), order.begin() + k, order.end(), before);
                                 std::sort(order.begin(), order.begin() + k);
                             }
                             T* vd = vp + o * k * I + i;
                             std::int64_t* id = ip + o * k * I + i;
                             for (std::int64_t j = 0; j < k; ++j) {
                                 id[j * I] = order[std::size_t(j)];
                                 vd[j * I] = vals[std::size_t(order[std::size_t(j)])];
                             }
                         }
                     });
    }
    if (x.dim() == 0 && k == 1) {  // a scalar input gives scalar results
        r.values = r.values.reshape({});
        r.indices = r.indices.reshape({});
    }
    return r;
}

}  // namespace polymath::ops
