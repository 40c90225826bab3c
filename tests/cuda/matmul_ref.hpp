// CPU references for tests/cuda/test_matmul.cu: thin forwards to the CPU ops
// of ops/matmul.hpp and ops/grouped_gemm.hpp (compiled by g++ in
// matmul_ref.cpp, so the .cu file never sees Eigen). T is float or double.
#pragma once
#include <cstdint>
#include <string>

#include <polymath/tensor/tensor.hpp>

namespace polymath::test_ref {

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<T> matmul_nt(const Tensor<T>& a, const Tensor<T>& b);
template <class T>
Tensor<T> matmul_tn(const Tensor<T>& a, const Tensor<T>& b);
// out = alpha · op(a) · op(b) + beta · out, in place.
template <class T>
void gemm_into(const Tensor<T>& a, const Tensor<T>& b, bool trans_a, bool trans_b, T alpha, T beta, const Tensor<T>& out);
template <class T>
Tensor<T> gemm(const Tensor<T>& a, const Tensor<T>& b, bool trans_a, bool trans_b, T alpha);
// ops::matmul_backward: (da, db).
template <class T>
void matmul_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& da, Tensor<T>& db);

// The what() of the Error the CPU matmul throws for these shapes ("" if none).
std::string matmul_error(const Shape& a, const Shape& b);

template <class T>
Tensor<T> grouped_gemm(const Tensor<T>& a, const Tensor<T>& b, const Tensor<std::int64_t>& offsets, bool trans_b);
template <class T>
void grouped_gemm_into(const Tensor<T>& a, const Tensor<T>& b, const Tensor<std::int64_t>& offsets, bool trans_b,
                       T alpha, T beta, const Tensor<T>& out);
template <class T>
Tensor<T> grouped_gemm_tn(const Tensor<T>& a, const Tensor<T>& g, const Tensor<std::int64_t>& offsets);
template <class T>
void grouped_bias_add_(const Tensor<T>& out, const Tensor<T>& bias, const Tensor<std::int64_t>& offsets);
template <class T>
Tensor<T> grouped_row_sum(const Tensor<T>& g, const Tensor<std::int64_t>& offsets);

}  // namespace polymath::test_ref
