// CPU references for tests/cuda/test_conv.cu (depthwise_conv1d, embedding,
// dropout). Thin forwards to the CPU ops, compiled by g++ in conv_ref.cpp so
// that the .cu file never includes the Eigen-based CPU headers. The padding
// mode is passed as an int (0 Valid, 1 Same, 2 Causal: PaddingMode's order).
#pragma once
#include <cstdint>

#include <polymath/tensor/tensor.hpp>

namespace polymath::test {

template <class T>
struct RefConvGrads {
    Tensor<T, Cpu> dx, dw, db;
};
template <class T>
struct RefDropout {
    Tensor<T, Cpu> y;
    Tensor<std::uint8_t, Cpu> mask;
    std::uint64_t seed = 0, offset = 0;
};

// T = float or double.
template <class T>
Tensor<T, Cpu> ref_depthwise_conv1d(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& bias,
                                    std::int64_t dilation, int padding_mode);
template <class T>
RefConvGrads<T> ref_depthwise_conv1d_backward(const Tensor<T, Cpu>& g, const Tensor<T, Cpu>& x,
                                              const Tensor<T, Cpu>& w, std::int64_t dilation, int padding_mode,
                                              bool need_dx, bool need_dw, bool need_db);

// T = float, double or int32_t.
template <class T>
Tensor<T, Cpu> ref_embedding(const Tensor<T, Cpu>& weight, const Tensor<std::int64_t, Cpu>& indices,
                             std::int64_t padding_idx);
template <class T>
Tensor<T, Cpu> ref_embedding_backward(const Tensor<T, Cpu>& grad, const Tensor<std::int64_t, Cpu>& indices,
                                      std::int64_t num_embeddings, std::int64_t padding_idx);

// T = float or double.
template <class T>
RefDropout<T> ref_dropout_forward(const Tensor<T, Cpu>& x, double p, Generator& gen);
template <class T>
Tensor<T, Cpu> ref_dropout_backward(const Tensor<T, Cpu>& g, const Tensor<std::uint8_t, Cpu>& mask, double p);
Tensor<std::uint8_t, Cpu> ref_dropout_mask(const Shape& shape, double p, std::uint64_t seed, std::uint64_t offset);

}  // namespace polymath::test
