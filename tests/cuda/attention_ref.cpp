// CPU reference wrappers for the CUDA attention tests (see attention_ref.hpp).
#include "attention_ref.hpp"

#include <polymath/polymath.hpp>

namespace polymath::test {
namespace {
template <class T>
AttentionRef<T> run(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, const Tensor<std::uint8_t>& m,
                    const Tensor<T>& g, std::int64_t H, bool causal, double scale) {
    const ops::AttentionOptions opt{.num_heads = H, .causal = causal, .scale = scale};
    ops::AttentionForward<T> f = ops::attention_forward(q, k, v, m, opt);
    ops::AttentionGrads<T> r = ops::attention_backward(g, q, k, v, f.probs, opt);
    return {f.out, r.dq, r.dk, r.dv};
}
}  // namespace

AttentionRef<float> attention_ref(const Tensor<float, Cpu>& q, const Tensor<float, Cpu>& k,
                                  const Tensor<float, Cpu>& v, const Tensor<std::uint8_t, Cpu>& m,
                                  const Tensor<float, Cpu>& g, std::int64_t H, bool causal, double scale) {
    return run(q, k, v, m, g, H, causal, scale);
}
AttentionRef<double> attention_ref(const Tensor<double, Cpu>& q, const Tensor<double, Cpu>& k,
                                   const Tensor<double, Cpu>& v, const Tensor<std::uint8_t, Cpu>& m,
                                   const Tensor<double, Cpu>& g, std::int64_t H, bool causal, double scale) {
    return run(q, k, v, m, g, H, causal, scale);
}

}  // namespace polymath::test
