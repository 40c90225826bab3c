// polymath/ops/iterate.hpp — the strided loop under every elementwise kernel.
//
// for_each_row walks N operands of one (broadcast) shape. It first coalesces
// dimensions that are contiguous in every operand and drops size-1 dims, so a
// contiguous tensor of any rank becomes one long row and [N, C] + [C] becomes
// N rows of C. The row body gets raw pointers and the inner byte strides, and
// picks a vectorised Eigen path when the strides allow it. Rows are split over
// threads above the grain size; a single long row is split into chunks.
#pragma once
#include <array>
#include <cstdint>

#include <Eigen/Core>

#include "polymath/core/parallel.hpp"
#include "polymath/core/shape.hpp"

namespace polymath::ops {

template <class T>
using ArrayX = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T>
using VecMap = Eigen::Map<ArrayX<T>>;
template <class T>
using CVecMap = Eigen::Map<const ArrayX<T>>;
template <class T>
using CStridedMap = Eigen::Map<const ArrayX<T>, 0, Eigen::InnerStride<>>;

namespace detail {

// Geometry after coalescing: dims[0..nd) with per-operand byte strides.
template <int N>
struct Geometry {
    int nd = 0;
    std::int64_t dims[kMaxDims];
    std::int64_t strides[N][kMaxDims];
};

template <int N>
Geometry<N> coalesce(const Shape& shape, const std::array<const Strides*, N>& st,
                     const std::array<std::int64_t, N>& elem_size) {
    Geometry<N> g;
    for (int d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        if (g.nd > 0) {
            bool merge = true;
            for (int k = 0; k < N; ++k)
                merge = merge && g.strides[k][g.nd - 1] == (*st[k])[d] * elem_size[k] * shape[d];
            if (merge) {
                g.dims[g.nd - 1] *= shape[d];
                for (int k = 0; k < N; ++k) g.strides[k][g.nd - 1] = (*st[k])[d] * elem_size[k];
                continue;
            }
        }
        g.dims[g.nd] = shape[d];
        for (int k = 0; k < N; ++k) g.strides[k][g.nd] = (*st[k])[d] * elem_size[k];
        ++g.nd;
    }
    if (g.nd == 0) {  // scalar
        g.nd = 1;
        g.dims[0] = 1;
        for (int k = 0; k < N; ++k) g.strides[k][0] = elem_size[k];
    }
    return g;
}

}  // namespace detail

// Calls row(ptrs, inner_byte_strides, n) for every innermost row of `shape`.
// `base[k]` points at element 0 of operand k, `strides[k]` are its element
// strides (0 where broadcast), `elem_size[k]` its sizeof.
template <int N, class RowFn>
void for_each_row(const Shape& shape, std::array<char*, N> base, const std::array<const Strides*, N>& strides,
                  const std::array<std::int64_t, N>& elem_size, std::int64_t grain, RowFn&& row) {
    const std::int64_t total = numel_of(shape);
    if (total == 0) return;
    const detail::Geometry<N> g = detail::coalesce<N>(shape, strides, elem_size);
    const std::int64_t inner = g.dims[g.nd - 1];
    std::array<std::int64_t, N> inner_st;
    for (int k = 0; k < N; ++k) inner_st[k] = g.strides[k][g.nd - 1];

    if (g.nd == 1) {  // one row: split it into chunks
        parallel_for(0, inner, grain, [&](std::int64_t b, std::int64_t e) {
            std::array<char*, N> p;
            for (int k = 0; k < N; ++k) p[k] = base[k] + b * inner_st[k];
            row(p, inner_st, e - b);
        });
        return;
    }
    const std::int64_t rows = total / inner;
    const std::int64_t row_grain = std::max<std::int64_t>(1, grain / std::max<std::int64_t>(inner, 1));
    parallel_for(0, rows, row_grain, [&](std::int64_t rb, std::int64_t re) {
        // Offsets of row rb, then increment like an odometer.
        std::int64_t idx[kMaxDims] = {};
        std::array<char*, N> p = base;
        std::int64_t r = rb;
        for (int d = g.nd - 2; d >= 0; --d) {
            idx[d] = r % g.dims[d];
            r /= g.dims[d];
            for (int k = 0; k < N; ++k) p[k] += idx[d] * g.strides[k][d];
        }
        for (std::int64_t rr = rb; rr < re; ++rr) {
            row(p, inner_st, inner);
            for (int d = g.nd - 2; d >= 0; --d) {
                if (++idx[d] < g.dims[d]) {
                    for (int k = 0; k < N; ++k) p[k] += g.strides[k][d];
                    break;
                }
                for (int k = 0; k < N; ++k) p[k] -= g.strides[k][d] * (g.dims[d] - 1);
                idx[d] = 0;
            }
        }
    });
}

}  // namespace polymath::ops
