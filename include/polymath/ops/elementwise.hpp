// polymath/ops/elementwise.hpp — map kernels that every elementwise op is built from.
//
// An op is written once as a functor over Eigen array expressions, e.g.
//   [](const auto& a, const auto& b) { return a * b; }
// and unary_map / binary_map / ternary_map run it over tensors of any layout:
// contiguous rows go through Eigen's vectorised (AVX-512 where compiled for
// it) packet path, broadcast operands become Constant expressions, other
// strides use strided maps. Results are new contiguous tensors.
//
// sum_to reduces a broadcast gradient back to an input's shape; it is what
// every broadcasting op's backward ends with.
#pragma once
#include <array>
#include <type_traits>

#include "polymath/ops/iterate.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {

namespace detail {

// Eigen expressions for a row of n elements at p with byte stride st. Each
// functor is instantiated once per variant, so the variants are few (compile
// time): a plain map (vectorised) or a strided map (stride 0 = broadcast).
template <class T>
POLYMATH_ALWAYS_INLINE CVecMap<T> contiguous_row(const char* p, std::int64_t n) {
    return CVecMap<T>(reinterpret_cast<const T*>(p), n);
}
template <class T>
POLYMATH_ALWAYS_INLINE CStridedMap<T> strided_row(const char* p, std::int64_t st, std::int64_t n) {
    return CStridedMap<T>(reinterpret_cast<const T*>(p), n,
                          Eigen::InnerStride<>(st / static_cast<std::int64_t>(sizeof(T))));
}

}  // namespace detail

// out = f(a), same shape as a.
template <class TO, class TA, class F>
Tensor<TO> unary_map(const Tensor<TA>& a, F&& f, std::int64_t grain = kElementwiseGrain) {
    a.check_defined("unary op");
    Tensor<TO> out = Tensor<TO>::empty(a.shape());
    const Strides ost = out.strides();
    for_each_row<2>(a.shape(), {reinterpret_cast<char*>(out.data()), reinterpret_cast<char*>(a.data())},
                    {&ost, &a.strides()}, {sizeof(TO), sizeof(TA)}, grain,
                    [&](const std::array<char*, 2>& p, const std::array<std::int64_t, 2>& st, std::int64_t n) {
                        VecMap<TO> o(reinterpret_cast<TO*>(p[0]), n);
                        if (st[1] == std::int64_t(sizeof(TA)))
                            o = f(detail::contiguous_row<TA>(p[1], n));
                        else
                            o = f(detail::strided_row<TA>(p[1], st[1], n));
                    });
    return out;
}

// out = f(a, b) with NumPy broadcasting; `op` names the op in errors.
template <class TO, class TA, class TB, class F>
Tensor<TO> binary_map(const char* op, const Tensor<TA>& a, const Tensor<TB>& b, F&& f,
                      std::int64_t grain = kElementwiseGrain) {
    a.check_defined(op);
    b.check_defined(op);
    const Shape shape = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), op);
    Tensor<TO> out = Tensor<TO>::empty(shape);
    const Strides ost = out.strides();
    const Strides ast = a.shape() == shape ? a.strides() : broadcast_strides(a.shape(), a.strides(), shape);
    const Strides bst = b.shape() == shape ? b.strides() : broadcast_strides(b.shape(), b.strides(), shape);
    for_each_row<3>(
        shape,
        {reinterpret_cast<char*>(out.data()), reinterpret_cast<char*>(a.data()), reinterpret_cast<char*>(b.data())},
        {&ost, &ast, &bst}, {sizeof(TO), sizeof(TA), sizeof(TB)}, grain,
        [&](const std::array<char*, 3>& p, const std::array<std::int64_t, 3>& st, std::int64_t n) {
            VecMap<TO> o(reinterpret_cast<TO*>(p[0]), n);
            const bool ca = st[1] == std::int64_t(sizeof(TA)), cb = st[2] == std::int64_t(sizeof(TB));
            if (ca && cb)  // same-shape rows: fully vectorised
                o = f(detail::contiguous_row<TA>(p[1], n), detail::contiguous_row<TB>(p[2], n));
            else if (ca && st[2] == 0)  // a row against one value (e.g. [N, C] op [N, 1])
                o = f(detail::contiguous_row<TA>(p[1], n), ArrayX<TB>::Constant(n, *reinterpret_cast<const TB*>(p[2])));
            else
                o = f(detail::strided_row<TA>(p[1], st[1], n), detail::strided_row<TB>(p[2], st[2], n));
        });
    return out;
}

// out = f(a, b, c) with broadcasting. Contiguous rows are vectorised; other
// layouts use strided maps (stride 0 for broadcast operands).
template <class TO, class TA, class TB, class TC, class F>
Tensor<TO> ternary_map(const char* op, const Tensor<TA>& a, const Tensor<TB>& b, const Tensor<TC>& c, F&& f,
                       std::int64_t grain = kElementwiseGrain) {
    a.check_defined(op);
    b.check_defined(op);
    c.check_defined(op);
    const Shape shape = broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), op), c.shape(), op);
    Tensor<TO> out = Tensor<TO>::empty(shape);
    const Strides ost = out.strides();
    const Strides ast = broadcast_strides(a.shape(), a.strides(), shape);
    const Strides bst = broadcast_strides(b.shape(), b.strides(), shape);
    const Strides cst = broadcast_strides(c.shape(), c.strides(), shape);
    for_each_row<4>(shape,
                    {reinterpret_cast<char*>(out.data()), reinterpret_cast<char*>(a.data()),
                     reinterpret_cast<char*>(b.data()), reinterpret_cast<char*>(c.data())},
                    {&ost, &ast, &bst, &cst}, {sizeof(TO), sizeof(TA), sizeof(TB), sizeof(TC)}, grain,
                    [&](const std::array<char*, 4>& p, const std::array<std::int64_t, 4>& st, std::int64_t n) {
                        VecMap<TO> o(reinterpret_cast<TO*>(p[0]), n);
                        if (st[1] == sizeof(TA) && st[2] == sizeof(TB) && st[3] == sizeof(TC)) {
                            o = f(CVecMap<TA>(reinterpret_cast<const TA*>(p[1]), n),
                                  CVecMap<TB>(reinterpret_cast<const TB*>(p[2]), n),
                                  CVecMap<TC>(reinterpret_cast<const TC*>(p[3]), n));
                        } else {
                            o = f(detail::strided_row<TA>(p[1], st[1], n), detail::strided_row<TB>(p[2], st[2], n),
                                  detail::strided_row<TC>(p[3], st[3], n));
                        }
                    });
    return out;
}

}  // namespace polymath::ops
