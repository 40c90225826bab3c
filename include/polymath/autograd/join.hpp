// polymath/autograd/join.hpp — differentiable concat, stack, split, chunk.
//
// concat / stack hand each input its slice of the gradient; split / chunk
// return one differentiable narrow of the input per piece (each piece's
// backward scatters its gradient into zeros of the input's shape, and the
// engine sums the pieces' contributions).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "polymath/autograd/var.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/ops/join.hpp"

namespace polymath {

template <class T>
Var<T> concat(const std::vector<Var<T>>& xs, std::int64_t axis = 0) {
    std::vector<Tensor<T>> vals;
    vals.reserve(xs.size());
    for (const auto& x : xs) vals.push_back(x.value());
    Tensor<T> out = ops::concat(vals, axis);  // validates shapes and axis
    const int a = normalize_axis(axis, out.dim(), "concat");
    std::vector<std::int64_t> sizes;
    sizes.reserve(xs.size());
    for (const auto& x : xs) sizes.push_back(x.shape()[a]);
    return autograd::make_result("concat", std::move(out), xs,
                                 [sizes = std::move(sizes), a](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     std::int64_t off = 0;
                                     for (std::size_t i = 0; i < sizes.size(); ++i) {
                                         if (s.needs(i)) s.add(i, g.narrow(a, off, sizes[i]));
                                         off += sizes[i];
                                     }
                                 });
}
template <class T>
Var<T> concat(std::initializer_list<Var<T>> xs, std::int64_t axis = 0) {
    return concat(std::vector<Var<T>>(xs), axis);
}

template <class T>
Var<T> stack(const std::vector<Var<T>>& xs, std::int64_t axis = 0) {
    std::vector<Tensor<T>> vals;
    vals.reserve(xs.size());
    for (const auto& x : xs) vals.push_back(x.value());
    Tensor<T> out = ops::stack(vals, axis);  // validates shapes and axis
    const int a = normalize_axis(axis, out.dim(), "stack");
    return autograd::make_result("stack", std::move(out), xs,
                                 [n = xs.size(), a](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     for (std::size_t i = 0; i < n; ++i)
                                         if (s.needs(i)) s.add(i, g.select(a, std::int64_t(i)));
                                 });
}
template <class T>
Var<T> stack(std::initializer_list<Var<T>> xs, std::int64_t axis = 0) {
    return stack(std::vector<Var<T>>(xs), axis);
}

// Differentiable pieces of x along `axis` with the given sizes.
template <class T>
std::vector<Var<T>> split(const Var<T>& x, const std::vector<std::int64_t>& sizes, std::int64_t axis = 0) {
    POLYMATH_CHECK(x.dim() >= 1, "split", "expects a tensor with at least one dimension, got shape ", x.shape());
    const int a = normalize_axis(axis, x.dim(), "split");
    ops::check_split_sizes(sizes, x.shape()[a], x.shape(), a);
    std::vector<Var<T>> out;
    out.reserve(sizes.size());
    std::int64_t off = 0;
    for (auto n : sizes) {
        out.push_back(narrow(x, a, off, n));
        off += n;
    }
    return out;
}
template <class T>
std::vector<Var<T>> split(const Var<T>& x, std::int64_t split_size, std::int64_t axis = 0) {
    POLYMATH_CHECK(x.dim() >= 1, "split", "expects a tensor with at least one dimension, got shape ", x.shape());
    const int a = normalize_axis(axis, x.dim(), "split");
    return split(x, ops::split_sizes(x.shape()[a], split_size), a);
}
template <class T>
std::vector<Var<T>> chunk(const Var<T>& x, std::int64_t chunks, std::int64_t axis = 0) {
    POLYMATH_CHECK(x.dim() >= 1, "chunk", "expects a tensor with at least one dimension, got shape ", x.shape());
    const int a = normalize_axis(axis, x.dim(), "chunk");
    return split(x, ops::chunk_sizes(x.shape()[a], chunks), a);
}

}  // namespace polymath
