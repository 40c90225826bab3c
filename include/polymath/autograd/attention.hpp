// polymath/autograd/attention.hpp — differentiable fused multi-head attention.
//
//   Var<float> o = scaled_dot_product_attention(q, k, v, {.num_heads = 4, .causal = true}, key_padding_mask);
//
// q [B, Lq, H*dk], k [B, Lk, H*dk], v [B, Lk, H*dv] -> [B, Lq, H*dv]; see
// ops/attention.hpp for the exact semantics. The node keeps the softmax
// probabilities [B, H, Lq, Lk] for the backward.
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/attention.hpp"

namespace polymath {

template <class T>
Var<T> scaled_dot_product_attention(const Var<T>& q, const Var<T>& k, const Var<T>& v,
                                    const ops::AttentionOptions& opt,
                                    const Tensor<std::uint8_t>& key_padding_mask = Tensor<std::uint8_t>()) {
    ops::AttentionForward<T> f = ops::attention_forward(q.value(), k.value(), v.value(), key_padding_mask, opt);
    return autograd::make_result(
        "attention", f.out, {&q, &k, &v},
        [qv = q.value(), kv = k.value(), vv = v.value(), P = f.probs, opt](const Tensor<T>& g,
                                                                          autograd::GradSink<T, Cpu>& s) {
            ops::AttentionGrads<T> r = ops::attention_backward(g, qv, kv, vv, P, opt, s.needs(0), s.needs(1), s.needs(2));
            if (s.needs(0)) s.add(0, std::move(r.dq));
            if (s.needs(1)) s.add(1, std::move(r.dk));
            if (s.needs(2)) s.add(2, std::move(r.dv));
        });
}

}  // namespace polymath
