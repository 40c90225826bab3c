// polymath/tensor/eigen.hpp — zero-copy views between host tensors and Eigen.
//
//   auto m = polymath::as_eigen(t);          // Eigen::Map of a 2-D tensor
//   auto t = polymath::from_eigen(matrix);   // Tensor viewing the matrix
//
// Views share memory: writes through one are seen by the other. from_eigen does
// not own the matrix; the matrix must outlive the tensor (or pass a
// keep_alive handle).
#pragma once
#include <Eigen/Core>

#include "polymath/tensor/tensor.hpp"

namespace polymath {

template <class T>
using EigenRowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using EigenMap = Eigen::Map<EigenRowMatrix<T>, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

// A 2-D tensor (any strides >= 0) as an Eigen row-major map; 1-D tensors map as one column.
template <class T>
EigenMap<T> as_eigen(const Tensor<T, Cpu>& t) {
    t.check_defined("as_eigen");
    POLYMATH_CHECK(t.dim() == 1 || t.dim() == 2, "as_eigen", "expects a 1-D or 2-D tensor, got shape ", t.shape());
    if (t.dim() == 1) return EigenMap<T>(t.data(), t.shape()[0], 1, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(1, t.strides()[0]));
    return EigenMap<T>(t.data(), t.shape()[0], t.shape()[1],
                       Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(t.strides()[0], t.strides()[1]));
}

// A tensor viewing an Eigen dense object's memory (no copy).
template <class Derived>
auto from_eigen(Eigen::PlainObjectBase<Derived>& m, std::shared_ptr<void> keep_alive = {}) {
    using T = typename Derived::Scalar;
    const std::int64_t r = m.rows(), c = m.cols();
    const bool row_major = Derived::IsRowMajor;
    const Strides st = row_major ? Strides{m.outerStride(), 1} : Strides{1, m.outerStride()};
    return Tensor<T, Cpu>::from_blob(m.data(), Shape{r, c}, st, std::move(keep_alive));
}

}  // namespace polymath
