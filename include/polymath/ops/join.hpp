// polymath/ops/join.hpp — concat, stack, split, chunk (no autograd).
//
//   concat({a, b, ...}, axis)   shapes equal except along axis; result is new
//   stack({a, b, ...}, axis)    equal shapes; a new axis of size n at `axis`
//   split(x, size, axis)        views of `size` entries along axis (the last may be smaller)
//   split(x, {s0, s1..}, axis)  views of the given sizes (must sum to the axis size)
//   chunk(x, n, axis)           split into ceil(size / n)-sized views (torch.chunk:
//                               may return fewer than n pieces)
//
// concat copies contiguous slabs with memcpy ([O, N_i, I] blocks), splitting
// the outer dimension over threads when the copy is large.
#pragma once
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "polymath/core/parallel.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

namespace detail {
// Normalised axis and result shape of concatenating `shapes` along `axis`.
inline int concat_shape(const std::vector<Shape>& shapes, std::int64_t axis, const char* op, Shape& out) {
    POLYMATH_CHECK(!shapes.empty(), op, "needs at least one tensor");
    const Shape& s0 = shapes[0];
    POLYMATH_CHECK(s0.size() >= 1, op, "cannot concatenate zero-dimensional tensors (tensor 0 has shape ", s0, ")");
    const int a = normalize_axis(axis, s0.size(), op);
    out = s0;
    for (std::size_t i = 1; i < shapes.size(); ++i) {
        const Shape& s = shapes[i];
        bool ok = s.size() == s0.size();
        for (int d = 0; ok && d < s0.size(); ++d) ok = d == a || s[d] == s0[d];
        POLYMATH_CHECK(ok, op, "tensor 0 has shape ", s0, " and tensor ", i, " has shape ", s,
                       "; shapes must match in every dimension except the concatenation axis ", a);
        out[a] += s[a];
    }
    return a;
}
}  // namespace detail

template <class T>
Tensor<T> concat(const std::vector<Tensor<T>>& xs, std::int64_t axis = 0) {
    std::vector<Shape> shapes;
    shapes.reserve(xs.size());
    for (const auto& x : xs) {
        x.check_defined("concat");
        shapes.push_back(x.shape());
    }
    Shape os;
    const int a = detail::concat_shape(shapes, axis, "concat", os);
    Tensor<T> out = Tensor<T>::empty(os);
    if (out.numel() == 0) return out;
    std::int64_t O = 1, I = 1;
    for (int d = 0; d < a; ++d) O *= os[d];
    for (int d = a + 1; d < os.size(); ++d) I *= os[d];
    const std::int64_t Ntot = os[a];
    std::vector<Tensor<T>> cs;
    cs.reserve(xs.size());
    for (const auto& x : xs) cs.push_back(x.contiguous());
    T* op = out.data();
    if (O >= 4 * num_threads() || out.numel() <= kElementwiseGrain) {
        // One task copies, for outer index o, every input's slab of N_i * I elements.
        parallel_for(0, O, std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(Ntot * I, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t o = b; o < e; ++o) {
                             std::int64_t off = 0;
                             for (const auto& c : cs) {
                                 const std::int64_t n = c.shape()[a] * I;
                                 if (n > 0)
                                     std::memcpy(static_cast<void*>(op + o * Ntot * I + off),
                                                 static_cast<const void*>(c.data() + o * n), std::size_t(n) * sizeof(T));
                                 off += n;
                             }
                         }
                     });
        return out;
    }
    // Few large slabs (e.g. concatenating along axis 0): cut them into pieces
    // and copy the pieces in parallel.
    struct Piece {
        T* dst;
        const T* src;
        std::int64_t n;
    };
    std::vector<Piece> pieces;
    const std::int64_t piece = kElementwiseGrain;
    for (std::int64_t o = 0; o < O; ++o) {
        std::int64_t off = 0;
        for (const auto& c : cs) {
            const std::int64_t n = c.shape()[a] * I;
            for (std::int64_t p = 0; p < n; p += piece)
                pieces.push_back({op + o * Ntot * I + off + p, c.data() + o * n + p, std::min(piece, n - p)});
            off += n;
        }
    }
    parallel_for(0, std::int64_t(pieces.size()), 1, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t k = b; k < e; ++k) {
            const Piece& p = pieces[std::size_t(k)];
            std::memcpy(static_cast<void*>(p.dst), static_cast<const void*>(p.src), std::size_t(p.n) * sizeof(T));
        }
    });
    return out;
}
template <class T>
Tensor<T> concat(std::initializer_list<Tensor<T>> xs, std::int64_t axis = 0) {
    return concat(std::vector<Tensor<T>>(xs), axis);
}

namespace detail {
inline int check_stack_shapes(const std::vector<Shape>& shapes, std::int64_t axis) {
    POLYMATH_CHECK(!shapes.empty(), "stack", "needs at least one tensor");
    for (std::size_t i = 1; i < shapes.size(); ++i)
        POLYMATH_CHECK(shapes[i] == shapes[0], "stack", "tensor 0 has shape ", shapes[0], " and tensor ", i,
                       " has shape ", shapes[i], "; all shapes must be equal");
    return normalize_axis(axis, shapes[0].size() + 1, "stack");
}
}  // namespace detail

template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& xs, std::int64_t axis = 0) {
    std::vector<Shape> shapes;
    for (const auto& x : xs) {
        x.check_defined("stack");
        shapes.push_back(x.shape());
    }
    const int a = detail::check_stack_shapes(shapes, axis);
    std::vector<Tensor<T>> us;
    us.reserve(xs.size());
    for (const auto& x : xs) us.push_back(x.unsqueeze(a));
    return concat(us, a);
}
template <class T>
Tensor<T> stack(std::initializer_list<Tensor<T>> xs, std::int64_t axis = 0) {
    return stack(std::vector<Tensor<T>>(xs), axis);
}

// ---- split / chunk ----------------------------------------------------------

// Piece sizes of splitting n entries into pieces of split_size (last smaller).
inline std::vector<std::int64_t> split_sizes(std::int64_t n, std::int64_t split_size, const char* op = "split") {
    POLYMATH_CHECK(split_size > 0 || (split_size == 0 && n == 0), op, "split size must be positive, got ", split_size,
                   " for an axis of size ", n);
    if (n == 0) return {0};
    std::vector<std::int64_t> s;
    for (std::int64_t off = 0; off < n; off += split_size) s.push_back(std::min(split_size, n - off));
    return s;
}
// torch.chunk sizes: pieces of ceil(n / chunks); fewer than `chunks` pieces
// when the axis is too short (an empty axis gives `chunks` empty pieces).
inline std::vector<std::int64_t> chunk_sizes(std::int64_t n, std::int64_t chunks) {
    POLYMATH_CHECK(chunks > 0, "chunk", "number of chunks must be positive, got ", chunks);
    if (n == 0) return std::vector<std::int64_t>(std::size_t(chunks), 0);
    return split_sizes(n, (n + chunks - 1) / chunks, "chunk");
}
inline void check_split_sizes(const std::vector<std::int64_t>& sizes, std::int64_t n, const Shape& shape, int axis) {
    std::int64_t total = 0;
    for (auto s : sizes) {
        POLYMATH_CHECK(s >= 0, "split", "negative piece size ", s, " for axis ", axis, " of shape ", shape);
        total += s;
    }
    POLYMATH_CHECK(total == n, "split", "piece sizes sum to ", total, " but axis ", axis, " of shape ", shape,
                   " has size ", n);
}

// Views of x along `axis` with the given sizes (starting at 0, back to back).
template <class T>
std::vector<Tensor<T>> split(const Tensor<T>& x, const std::vector<std::int64_t>& sizes, std::int64_t axis = 0) {
    x.check_defined("split");
    POLYMATH_CHECK(x.dim() >= 1, "split", "expects a tensor with at least one dimension, got shape ", x.shape());
    const int a = normalize_axis(axis, x.dim(), "split");
    check_split_sizes(sizes, x.shape()[a], x.shape(), a);
    std::vector<Tensor<T>> out;
    out.reserve(sizes.size());
    std::int64_t off = 0;
    for (auto s : sizes) {
        out.push_back(x.narrow(a, off, s));
        off += s;
    }
    return out;
}
template <class T>
std::vector<Tensor<T>> split(const Tensor<T>& x, std::int64_t split_size, std::int64_t axis = 0) {
    x.check_defined("split");
    POLYMATH_CHECK(x.dim() >= 1, "split", "expects a tensor with at least one dimension, got shape ", x.shape());
    const int a = normalize_axis(axis, x.dim(), "split");
    return split(x, split_sizes(x.shape()[a], split_size), a);
}
template <class T>
std::vector<Tensor<T>> chunk(const Tensor<T>& x, std::int64_t chunks, std::int64_t axis = 0) {
    x.check_defined("chunk");
    POLYMATH_CHECK(x.dim() >= 1, "chunk", "expects a tensor with at least one dimension, got shape ", x.shape());
    const int a = normalize_axis(axis, x.dim(), "chunk");
    return split(x, chunk_sizes(x.shape()[a], chunks), a);
}

}  // namespace polymath::ops
