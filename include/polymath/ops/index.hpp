// polymath/ops/index.hpp — index_select, index_add, gather, scatter_add (no autograd).
//
//   index_select(x, axis, idx)      out[.., k, ..] = x[.., idx[k], ..]          (idx 1-D)
//   index_add(x, axis, idx, src)    out = x;  out[.., idx[k], ..] += src[.., k, ..]
//   gather(x, axis, idx)            out[i][j][k] = x[i][idx[i][j][k]][k]        (axis 1; torch.gather)
//   scatter_add(x, axis, idx, src)  out = x;  out[i][idx[i][j][k]][k] += src[i][j][k]
//
// Indices are Tensor<int64_t> and must lie in [0, size of the axis): negative
// indices are errors (no wrap-around), and an index out of range throws
// naming the op, the index value and the axis size.
//
// Accumulating kernels are deterministic: every output element sums its
// contributions in ascending order of position along the scatter axis, on any
// number of threads (work is split only over independent output slices).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "polymath/core/macros.hpp"
#include "polymath/core/parallel.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

// Element types the accumulating kernels (index_add, scatter_add, embedding
// backward) can add with `+=`.
template <class T>
inline constexpr bool kAddableIndexDType =
    std::is_same_v<T, float> || std::is_same_v<T, double> ||
    (std::is_integral_v<T> && !std::is_same_v<T, bool>);

namespace detail {

// Throws unless every value of `idx` is in [0, size). `axis` and `shape` are
// only used for the message.
inline void check_index_values(const char* op, const Tensor<std::int64_t>& idx, std::int64_t size, std::int64_t axis,
                               const Shape& shape) {
    if (idx.numel() == 0) return;
    const std::int64_t* base = idx.storage()->data();
    idx.for_each_offset([&](std::int64_t off) {
        const std::int64_t v = base[off];
        POLYMATH_CHECK(v >= 0 && v < size, op, "index ", v, " is out of range for axis ", axis, " of size ", size,
                       " (shape ", shape, ")", v < 0 ? "; negative indices are not supported" : "");
    });
}

// x (contiguous) seen as [O, N, I] around `axis`.
struct AxisSplit {
    std::int64_t O = 1, N = 1, I = 1;
};
inline AxisSplit split_at_axis(const Shape& s, int axis) {
    AxisSplit r;
    for (int d = 0; d < axis; ++d) r.O *= s[d];
    r.N = s[axis];
    for (int d = axis + 1; d < s.size(); ++d) r.I *= s[d];
    return r;
}

// Offsets, under strides `st`, of every multi-index of shape[d0, d1) in row-major order.
inline std::vector<std::int64_t> offset_table(const Shape& shape, int d0, int d1, const Strides& st) {
    std::int64_t n = 1;
    for (int d = d0; d < d1; ++d) n *= shape[d];
    std::vector<std::int64_t> out(static_cast<std::size_t>(n));
    if (n == 0) return out;
    std::int64_t idx[kMaxDims] = {};
    std::int64_t off = 0;
    for (std::int64_t k = 0; k < n; ++k) {
        out[std::size_t(k)] = off;
        for (int d = d1 - 1; d >= d0; --d) {
            if (++idx[d] < shape[d]) {
                off += st[d];
                break;
            }
            off -= st[d] * (shape[d] - 1);
            idx[d] = 0;
        }
    }
    return out;
}

// Calls f(o, i0, i1) for blocks of the lines (o, i), i in [i0, i1), of an
// [O, K, I] index space. A block owns its lines entirely, so f may loop over k
// serially (deterministic accumulation) while blocks run in parallel.
template <class F>
void for_each_line_block(std::int64_t O, std::int64_t K, std::int64_t I, F&& f) {
    if (O == 0 || I == 0 || K == 0) return;
    const std::int64_t ichunk = std::min<std::int64_t>(I, std::max<std::int64_t>(16, kElementwiseGrain / std::max<std::int64_t>(K, 1)));
    const std::int64_t nic = (I + ichunk - 1) / ichunk;
    const std::int64_t grain = std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(K * ichunk, 1));
    parallel_for(0, O * nic, grain, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t blk = b; blk < e; ++blk) {
            const std::int64_t o = blk / nic, i0 = (blk % nic) * ichunk;
            f(o, i0, std::min(I, i0 + ichunk));
        }
    });
}

// dst[o, idx[k], :] += src[o, k, :] for every k with idx[k] != skip;
// dst is [O, N, I], src [O, K, I], both contiguous; idx (K values) already
// checked to lie in [0, N). Each destination row sums its source rows in
// ascending k, whatever the thread count.
template <class T>
void index_add_rows(T* dst, const T* src, std::int64_t O, std::int64_t N, std::int64_t K, std::int64_t I,
                    const std::int64_t* idx, std::int64_t skip = -1) {
    if (O == 0 || N == 0 || K == 0 || I == 0) return;
    auto add_row = [I](T* POLYMATH_RESTRICT d, const T* POLYMATH_RESTRICT s) {
        for (std::int64_t j = 0; j < I; ++j) d[j] += s[j];
    };
    if (O * K * I <= kElementwiseGrain || num_threads() == 1) {  // small: serial, same order as below
        for (std::int64_t o = 0; o < O; ++o)
            for (std::int64_t k = 0; k < K; ++k)
                if (idx[k] != skip) add_row(dst + (o * N + idx[k]) * I, src + (o * K + k) * I);
        return;
    }
    // Group the source rows by destination row (stable counting sort), then
    // split the destination rows over threads.
    std::vector<std::int64_t> start(static_cast<std::size_t>(N + 1), 0), order(static_cast<std::size_t>(K));
    for (std::int64_t k = 0; k < K; ++k)
        if (idx[k] != skip) ++start[std::size_t(idx[k] + 1)];
    for (std::int64_t v = 0; v < N; ++v) start[std::size_t(v + 1)] += start[std::size_t(v)];
    {
        std::vector<std::int64_t> cursor(start.begin(), start.end() - 1);
        for (std::int64_t k = 0; k < K; ++k)
            if (idx[k] != skip) order[std::size_t(cursor[std::size_t(idx[k])]++)] = k;
    }
    const std::int64_t per_row = std::max<std::int64_t>(1, (K / std::max<std::int64_t>(N, 1)) * I);
    parallel_for(0, O * N, std::max<std::int64_t>(1, kElementwiseGrain / per_row), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
            const std::int64_t o = r / N, v = r % N;
            T* d = dst + r * I;
            for (std::int64_t p = start[std::size_t(v)]; p < start[std::size_t(v + 1)]; ++p)
                add_row(d, src + (o * K + order[std::size_t(p)]) * I);
        }
    });
}

// Checks shared by gather and scatter_add; returns the normalised axis.
inline int check_gather_like(const char* op, const Shape& xs, const Shape& is, std::int64_t axis) {
    const int a = normalize_axis(axis, xs.size(), op);
    POLYMATH_CHECK(is.size() == xs.size(), op, "index of shape ", is, " must have the same rank as the input of shape ",
                   xs);
    for (int d = 0; d < xs.size(); ++d)
        POLYMATH_CHECK(d == a || is[d] <= xs[d], op, "index of shape ", is, " is larger than the input of shape ", xs,
                       " in dimension ", d, " (only the axis ", a, " may differ)");
    return a;
}

// out (contiguous, x's shape) += scatter of src along axis a by idx.
template <class T>
void scatter_add_into(Tensor<T>& out, int a, const Tensor<std::int64_t>& idx, const Tensor<T>& src) {
    const Shape& is = idx.shape();
    const int nd = is.size();
    const std::vector<std::int64_t> oo = offset_table(is, 0, a, out.strides()), oi = offset_table(is, a + 1, nd, out.strides());
    const std::vector<std::int64_t> io = offset_table(is, 0, a, idx.strides()), ii = offset_table(is, a + 1, nd, idx.strides());
    const std::vector<std::int64_t> so = offset_table(is, 0, a, src.strides()), si = offset_table(is, a + 1, nd, src.strides());
    const std::int64_t osa = out.strides()[a], isa = idx.strides()[a], ssa = src.strides()[a];
    T* op = out.data();
    const T* sp = src.data();
    const std::int64_t* ip = idx.data();
    for_each_line_block(std::int64_t(oo.size()), is[a], std::int64_t(oi.size()),
                        [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
                            for (std::int64_t k = 0; k < is[a]; ++k)
                                for (std::int64_t i = i0; i < i1; ++i) {
                                    const std::int64_t v = ip[io[std::size_t(o)] + k * isa + ii[std::size_t(i)]];
                                    op[oo[std::size_t(o)] + v * osa + oi[std::size_t(i)]] +=
                                        sp[so[std::size_t(o)] + k * ssa + si[std::size_t(i)]];
                                }
                        });
}

}  // namespace detail

// ---- index_select / index_add ---------------------------------------------

// Picks the entries idx[0], idx[1], ... of `axis`: the result has x's shape
// with that axis of size idx.numel(). idx is 1-D (or a scalar, read as [1]).
template <class T>
Tensor<T> index_select(const Tensor<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx) {
    x.check_defined("index_select");
    idx.check_defined("index_select");
    POLYMATH_CHECK(x.dim() >= 1, "index_select", "expects a tensor with at least one dimension, got shape ", x.shape());
    POLYMATH_CHECK(idx.dim() <= 1, "index_select", "index must be 1-D, got shape ", idx.shape(), " (input shape ",
                   x.shape(), ")");
    const int a = normalize_axis(axis, x.dim(), "index_select");
    detail::check_index_values("index_select", idx, x.shape()[a], a, x.shape());
    const Tensor<std::int64_t> ic = idx.contiguous();
    const std::int64_t K = ic.numel();
    Shape os = x.shape();
    os[a] = K;
    Tensor<T> out = Tensor<T>::empty(os);
    if (out.numel() == 0) return out;
    const Tensor<T> xc = x.contiguous();
    const detail::AxisSplit g = detail::split_at_axis(xc.shape(), a);
    const T* xp = xc.data();
    T* op = out.data();
    const std::int64_t* ip = ic.data();
    const std::int64_t I = g.I, N = g.N;
    parallel_for(0, g.O * K, std::max<std::int64_t>(1, kElementwiseGrain / I), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r) {
            const std::int64_t o = r / K, k = r % K;
            const T* s = xp + (o * N + ip[k]) * I;
            T* d = op + r * I;
            if (I == 1)
                *d = *s;
            else
                std::memcpy(static_cast<void*>(d), static_cast<const void*>(s), std::size_t(I) * sizeof(T));
        }
    });
    return out;
}

// out = x with src[.., k, ..] added to entry idx[k] of `axis` (repeated
// indices accumulate, in ascending k). src has x's shape with that axis of
// size idx.numel(). The backward of index_select.
template <class T>
Tensor<T> index_add(const Tensor<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx, const Tensor<T>& src) {
    static_assert(kAddableIndexDType<T>, "index_add: T must be float, double or an integer type");
    x.check_defined("index_add");
    idx.check_defined("index_add");
    src.check_defined("index_add");
    POLYMATH_CHECK(x.dim() >= 1, "index_add", "expects a tensor with at least one dimension, got shape ", x.shape());
    POLYMATH_CHECK(idx.dim() <= 1, "index_add", "index must be 1-D, got shape ", idx.shape());
    const int a = normalize_axis(axis, x.dim(), "index_add");
    Shape want = x.shape();
    want[a] = idx.numel();
    POLYMATH_CHECK(src.shape() == want, "index_add", "source of shape ", src.shape(), " does not match ", want,
                   " (input shape ", x.shape(), " with axis ", a, " of size ", idx.numel(), ")");
    detail::check_index_values("index_add", idx, x.shape()[a], a, x.shape());
    Tensor<T> out = x.clone();
    const Tensor<T> sc = src.contiguous();
    const Tensor<std::int64_t> ic = idx.contiguous();
    const detail::AxisSplit g = detail::split_at_axis(x.shape(), a);
    detail::index_add_rows(out.data(), sc.data(), g.O, g.N, ic.numel(), g.I, ic.data());
    return out;
}

// Gradient of index_select w.r.t. x: zeros of x_shape with g index-added.
// (idx was checked by the forward pass; g has the forward result's shape.)
template <class T>
Tensor<T> index_select_backward(const Tensor<T>& g, const Shape& x_shape, std::int64_t axis,
                                const Tensor<std::int64_t>& idx) {
    static_assert(kAddableIndexDType<T>, "index_select_backward: T must be float, double or an integer type");
    const int a = normalize_axis(axis, x_shape.size(), "index_select_backward");
    Tensor<T> out = Tensor<T>::zeros(x_shape);
    const Tensor<T> gc = g.contiguous();
    const Tensor<std::int64_t> ic = idx.contiguous();
    const detail::AxisSplit s = detail::split_at_axis(x_shape, a);
    detail::index_add_rows(out.data(), gc.data(), s.O, s.N, ic.numel(), s.I, ic.data());
    return out;
}

// ---- gather / scatter_add ----------------------------------------------------

// torch.gather: out has idx's shape; along `axis` it reads x at idx, elsewhere
// at the same position (idx may be smaller than x in the other dimensions).
template <class T>
Tensor<T> gather(const Tensor<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx) {
    x.check_defined("gather");
    idx.check_defined("gather");
    if (x.dim() == 0) {
        POLYMATH_CHECK(idx.dim() == 0, "gather", "index of shape ", idx.shape(),
                       " must have the same rank as the input of shape ", x.shape());
        normalize_axis(axis, 0, "gather");
        return gather(x.reshape({1}), 0, idx.reshape({1})).reshape({});
    }
    const int a = detail::check_gather_like("gather", x.shape(), idx.shape(), axis);
    detail::check_index_values("gather", idx, x.shape()[a], a, x.shape());
    Tensor<T> out = Tensor<T>::empty(idx.shape());
    if (out.numel() == 0) return out;
    const Shape& is = idx.shape();
    const int nd = is.size();
    const std::vector<std::int64_t> xo = detail::offset_table(is, 0, a, x.strides()),
                                    xi = detail::offset_table(is, a + 1, nd, x.strides());
    const std::vector<std::int64_t> io = detail::offset_table(is, 0, a, idx.strides()),
                                    ii = detail::offset_table(is, a + 1, nd, idx.strides());
    const std::int64_t K = is[a], I = std::int64_t(xi.size()), xsa = x.strides()[a], isa = idx.strides()[a];
    const T* xp = x.data();
    const std::int64_t* ip = idx.data();
    T* op = out.data();
    // No accumulation: every output element is independent, so split over
    // (o, k) rows and chunks of long rows.
    const std::int64_t ichunk = std::min<std::int64_t>(I, 4096), nic = (I + ichunk - 1) / ichunk;
    parallel_for(0, std::int64_t(xo.size()) * K * nic, std::max<std::int64_t>(1, kElementwiseGrain / ichunk),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t blk = b; blk < e; ++blk) {
                         const std::int64_t row = blk / nic, i0 = (blk % nic) * ichunk, i1 = std::min(I, i0 + ichunk);
                         const std::int64_t o = row / K, k = row % K;
                         const std::int64_t xbase = xo[std::size_t(o)], ibase = io[std::size_t(o)] + k * isa;
                         T* orow = op + row * I;
                         for (std::int64_t i = i0; i < i1; ++i)
                             orow[i] = xp[xbase + ip[ibase + ii[std::size_t(i)]] * xsa + xi[std::size_t(i)]];
                     }
                 });
    return out;
}

// torch.scatter_add (out of place): out = x, then out[..idx[p]..] += src[p]
// for every position p of idx (src may be larger than idx; only the part
// covered by idx is read). Deterministic: repeated targets sum in ascending
// position along `axis`.
template <class T>
Tensor<T> scatter_add(const Tensor<T>& x, std::int64_t axis, const Tensor<std::int64_t>& idx, const Tensor<T>& src) {
    static_assert(kAddableIndexDType<T>, "scatter_add: T must be float, double or an integer type");
    x.check_defined("scatter_add");
    idx.check_defined("scatter_add");
    src.check_defined("scatter_add");
    if (x.dim() == 0) {
        POLYMATH_CHECK(idx.dim() == 0 && src.dim() == 0, "scatter_add", "index of shape ", idx.shape(),
                       " and source of shape ", src.shape(), " must have the same rank as the input of shape ",
                       x.shape());
        normalize_axis(axis, 0, "scatter_add");
        return scatter_add(x.reshape({1}), 0, idx.reshape({1}), src.reshape({1})).reshape({});
    }
    const int a = detail::check_gather_like("scatter_add", x.shape(), idx.shape(), axis);
    POLYMATH_CHECK(src.dim() == idx.dim(), "scatter_add", "source of shape ", src.shape(),
                   " must have the same rank as the index of shape ", idx.shape());
    for (int d = 0; d < idx.dim(); ++d)
        POLYMATH_CHECK(idx.shape()[d] <= src.shape()[d], "scatter_add", "index of shape ", idx.shape(),
                       " is larger than the source of shape ", src.shape(), " in dimension ", d);
    detail::check_index_values("scatter_add", idx, x.shape()[a], a, x.shape());
    Tensor<T> out = x.clone();
    if (idx.numel() > 0) detail::scatter_add_into(out, a, idx, src);
    return out;
}

// Gradient of gather w.r.t. x: zeros of x_shape with g scatter-added at idx.
// (idx was checked by the forward pass; g has idx's shape.)
template <class T>
Tensor<T> gather_backward(const Tensor<T>& g, const Shape& x_shape, std::int64_t axis, const Tensor<std::int64_t>& idx) {
    static_assert(kAddableIndexDType<T>, "gather_backward: T must be float, double or an integer type");
    if (x_shape.size() == 0) return gather_backward(g.reshape({1}), Shape{1}, 0, idx.reshape({1})).reshape({});
    const int a = normalize_axis(axis, x_shape.size(), "gather_backward");
    POLYMATH_CHECK(g.shape() == idx.shape(), "gather_backward", "gradient of shape ", g.shape(),
                   " does not match the index of shape ", idx.shape());
    Tensor<T> out = Tensor<T>::zeros(x_shape);
    if (idx.numel() > 0) detail::scatter_add_into(out, a, idx, g);
    return out;
}

// Gradient of scatter_add w.r.t. src: gather(g, axis, idx), zero-padded to
// src_shape where src is larger than idx.
template <class T>
Tensor<T> scatter_add_src_backward(const Tensor<T>& g, const Shape& src_shape, std::int64_t axis,
                                   const Tensor<std::int64_t>& idx) {
    Tensor<T> gi = gather(g, axis, idx);
    if (gi.shape() == src_shape) return gi;
    Tensor<T> out = Tensor<T>::zeros(src_shape);
    Tensor<T> view = out;
    for (int d = 0; d < gi.dim(); ++d) view = view.narrow(d, 0, gi.shape()[d]);
    view.copy_(gi);
    return out;
}

}  // namespace polymath::ops
