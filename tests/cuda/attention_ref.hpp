// CPU reference for tests/cuda/test_attention.cu: the CPU attention op
// (ops/attention.hpp) forward + backward, compiled by g++ in attention_ref.cpp
// so the .cu file never includes Eigen.
#pragma once
#include <cstdint>

#include <polymath/tensor/tensor.hpp>

namespace polymath::test {

template <class T>
struct AttentionRef {
    Tensor<T, Cpu> out;         // [B, Lq, H*dv]
    Tensor<T, Cpu> dq, dk, dv;  // gradients for grad_out
};

// ops::attention_forward(q, k, v, key_padding_mask, {num_heads, causal, scale}),
// then ops::attention_backward(grad_out, q, k, v, probs, ...).
AttentionRef<float> attention_ref(const Tensor<float, Cpu>& q, const Tensor<float, Cpu>& k,
                                  const Tensor<float, Cpu>& v, const Tensor<std::uint8_t, Cpu>& key_padding_mask,
                                  const Tensor<float, Cpu>& grad_out, std::int64_t num_heads, bool causal,
                                  double scale);
AttentionRef<double> attention_ref(const Tensor<double, Cpu>& q, const Tensor<double, Cpu>& k,
                                   const Tensor<double, Cpu>& v, const Tensor<std::uint8_t, Cpu>& key_padding_mask,
                                   const Tensor<double, Cpu>& grad_out, std::int64_t num_heads, bool causal,
                                   double scale);

}  // namespace polymath::test
