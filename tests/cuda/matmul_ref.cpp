// CPU references for tests/cuda/test_matmul.cu (see matmul_ref.hpp).
#include "matmul_ref.hpp"

#include <polymath/polymath.hpp>

namespace polymath::test_ref {

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) { return ops::matmul(a, b); }
template <class T>
Tensor<T> matmul_nt(const Tensor<T>& a, const Tensor<T>& b) { return ops::matmul_nt(a, b); }
template <class T>
Tensor<T> matmul_tn(const Tensor<T>& a, const Tensor<T>& b) { return ops::matmul_tn(a, b); }
template <class T>
void gemm_into(const Tensor<T>& a, const Tensor<T>& b, bool trans_a, bool trans_b, T alpha, T beta, const Tensor<T>& out) {
    ops::gemm(a, b, trans_a, trans_b, alpha, beta, out);
}
template <class T>
Tensor<T> gemm(const Tensor<T>& a, const Tensor<T>& b, bool trans_a, bool trans_b, T alpha) {
    return ops::gemm(a, b, trans_a, trans_b, alpha);
}
template <class T>
void matmul_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& da, Tensor<T>& db) {
    ops::MatmulGrads<T> r = ops::matmul_backward(g, a, b);
    da = r.da;
    db = r.db;
}

std::string matmul_error(const Shape& a, const Shape& b) {
    try {
        (void)ops::matmul(Tensor<float>::zeros(a), Tensor<float>::zeros(b));
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

template <class T>
Tensor<T> grouped_gemm(const Tensor<T>& a, const Tensor<T>& b, const Tensor<std::int64_t>& offsets, bool trans_b) {
    return ops::grouped_gemm(a, b, offsets, trans_b);
}
template <class T>
void grouped_gemm_into(const Tensor<T>& a, const Tensor<T>& b, const Tensor<std::int64_t>& offsets, bool trans_b,
                       T alpha, T beta, const Tensor<T>& out) {
    ops::grouped_gemm(a, b, offsets, trans_b, alpha, beta, out);
}
template <class T>
Tensor<T> grouped_gemm_tn(const Tensor<T>& a, const Tensor<T>& g, const Tensor<std::int64_t>& offsets) {
    return ops::grouped_gemm_tn(a, g, offsets);
}
template <class T>
void grouped_bias_add_(const Tensor<T>& out, const Tensor<T>& bias, const Tensor<std::int64_t>& offsets) {
    ops::grouped_bias_add_(out, bias, offsets);
}
template <class T>
Tensor<T> grouped_row_sum(const Tensor<T>& g, const Tensor<std::int64_t>& offsets) {
    return ops::grouped_row_sum(g, offsets);
}

#define POLYMATH_MATMUL_REF_INSTANTIATE(T)                                                                          \
    template Tensor<T> matmul<T>(const Tensor<T>&, const Tensor<T>&);                                               \
    template Tensor<T> matmul_nt<T>(const Tensor<T>&, const Tensor<T>&);                                            \
    template Tensor<T> matmul_tn<T>(const Tensor<T>&, const Tensor<T>&);                                            \
    template void gemm_into<T>(const Tensor<T>&, const Tensor<T>&, bool, bool, T, T, const Tensor<T>&);             \
    template Tensor<T> gemm<T>(const Tensor<T>&, const Tensor<T>&, bool, bool, T);                                  \
    template void matmul_backward<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Tensor<T>&, Tensor<T>&); \
    template Tensor<T> grouped_gemm<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<std::int64_t>&, bool);      \
    template void grouped_gemm_into<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<std::int64_t>&, bool, T, T, \
                                       const Tensor<T>&);                                                           \
    template Tensor<T> grouped_gemm_tn<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<std::int64_t>&);         \
    template void grouped_bias_add_<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<std::int64_t>&);            \
    template Tensor<T> grouped_row_sum<T>(const Tensor<T>&, const Tensor<std::int64_t>&);

POLYMATH_MATMUL_REF_INSTANTIATE(float)
POLYMATH_MATMUL_REF_INSTANTIATE(double)

}  // namespace polymath::test_ref
