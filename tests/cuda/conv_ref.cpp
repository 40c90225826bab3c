// CPU references for tests/cuda/test_conv.cu (see conv_ref.hpp).
#include "conv_ref.hpp"

#include <polymath/polymath.hpp>

namespace polymath::test {

namespace {
ops::PaddingMode mode_of(int m) {
    return m == 0 ? ops::PaddingMode::Valid : (m == 1 ? ops::PaddingMode::Same : ops::PaddingMode::Causal);
}
}  // namespace

template <class T>
Tensor<T, Cpu> ref_depthwise_conv1d(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& bias,
                                    std::int64_t dilation, int padding_mode) {
    return ops::depthwise_conv1d(x, w, bias, dilation, mode_of(padding_mode));
}
template <class T>
RefConvGrads<T> ref_depthwise_conv1d_backward(const Tensor<T, Cpu>& g, const Tensor<T, Cpu>& x,
                                              const Tensor<T, Cpu>& w, std::int64_t dilation, int padding_mode,
                                              bool need_dx, bool need_dw, bool need_db) {
    ops::ConvGrads<T> r =
        ops::depthwise_conv1d_backward(g, x, w, dilation, mode_of(padding_mode), need_dx, need_dw, need_db);
    return {r.dx, r.dw, r.db};
}

template <class T>
Tensor<T, Cpu> ref_embedding(const Tensor<T, Cpu>& weight, const Tensor<std::int64_t, Cpu>& indices,
                             std::int64_t padding_idx) {
    return ops::embedding(weight, indices, padding_idx);
}
template <class T>
Tensor<T, Cpu> ref_embedding_backward(const Tensor<T, Cpu>& grad, const Tensor<std::int64_t, Cpu>& indices,
                                      std::int64_t num_embeddings, std::int64_t padding_idx) {
    return ops::embedding_backward(grad, indices, num_embeddings, padding_idx);
}

template <class T>
RefDropout<T> ref_dropout_forward(const Tensor<T, Cpu>& x, double p, Generator& gen) {
    ops::DropoutForward<T> r = ops::dropout_forward(x, p, gen);
    return {r.y, r.mask, r.seed, r.offset};
}
template <class T>
Tensor<T, Cpu> ref_dropout_backward(const Tensor<T, Cpu>& g, const Tensor<std::uint8_t, Cpu>& mask, double p) {
    return ops::dropout_backward(g, mask, p);
}
Tensor<std::uint8_t, Cpu> ref_dropout_mask(const Shape& shape, double p, std::uint64_t seed, std::uint64_t offset) {
    return ops::dropout_mask(shape, p, seed, offset);
}

#define POLYMATH_CONV_REF_FLOAT(T)                                                                                    \
    template Tensor<T, Cpu> ref_depthwise_conv1d<T>(const Tensor<T, Cpu>&, const Tensor<T, Cpu>&,                    \
                                                    const Tensor<T, Cpu>&, std::int64_t, int);                        \
    template RefConvGrads<T> ref_depthwise_conv1d_backward<T>(const Tensor<T, Cpu>&, const Tensor<T, Cpu>&,          \
                                                              const Tensor<T, Cpu>&, std::int64_t, int, bool, bool,   \
                                                              bool);                                                  \
    template RefDropout<T> ref_dropout_forward<T>(const Tensor<T, Cpu>&, double, Generator&);                        \
    template Tensor<T, Cpu> ref_dropout_backward<T>(const Tensor<T, Cpu>&, const Tensor<std::uint8_t, Cpu>&, double);
POLYMATH_CONV_REF_FLOAT(float)
POLYMATH_CONV_REF_FLOAT(double)
#undef POLYMATH_CONV_REF_FLOAT

#define POLYMATH_EMB_REF(T)                                                                                           \
    template Tensor<T, Cpu> ref_embedding<T>(const Tensor<T, Cpu>&, const Tensor<std::int64_t, Cpu>&, std::int64_t); \
    template Tensor<T, Cpu> ref_embedding_backward<T>(const Tensor<T, Cpu>&, const Tensor<std::int64_t, Cpu>&,       \
                                                      std::int64_t, std::int64_t);
POLYMATH_EMB_REF(float)
POLYMATH_EMB_REF(double)
POLYMATH_EMB_REF(std::int32_t)
#undef POLYMATH_EMB_REF

}  // namespace polymath::test
