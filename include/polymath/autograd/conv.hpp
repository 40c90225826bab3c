// polymath/autograd/conv.hpp — differentiable convolutions.
//
//   Var<float> y = conv2d(x, w, b, /*stride=*/2, /*padding=*/1);        // x [N,C,H,W], w [O,C/g,kh,kw]
//   Var<float> z = conv2d(x, w, Var<float>(), {1, 2}, {0, 1}, 1, /*groups=*/2);   // no bias
//   Var<float> u = conv1d(h, w1, b1, 1, 2, /*dilation=*/2);            // h [N,C,L], w1 [O,C/g,k]
//   Var<float> v = depthwise_conv1d(hcl, wd, bd, /*dilation=*/8, PaddingMode::Causal);  // hcl [N,L,C], wd [K,C]
//
// Semantics as the kernels in ops/conv.hpp (PyTorch conv semantics; the
// depthwise op is channels-last with TensorFlow "SAME" / tensor2tensor "LEFT"
// padding). The forward saves x and w; the backward kernels return the
// requested gradients only (s.needs).
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/conv.hpp"

namespace polymath {

template <class T>
Var<T> conv2d(const Var<T>& x, const Var<T>& w, const Var<T>& bias = Var<T>(), Int2 stride = 1, Int2 padding = 0,
              Int2 dilation = 1, std::int64_t groups = 1) {
    const Tensor<T> bv = bias.defined() ? bias.value() : Tensor<T>();
    Tensor<T> y = ops::conv2d(x.value(), w.value(), bv, stride, padding, dilation, groups);
    return autograd::make_result(
        "conv2d", std::move(y), {&x, &w, &bias},
        [xv = x.value(), wv = w.value(), stride, padding, dilation, groups](const Tensor<T>& g,
                                                                          autograd::GradSink<T, Cpu>& s) {
            ops::ConvGrads<T> r = ops::conv2d_backward(g, xv, wv, stride, padding, dilation, groups, s.needs(0),
                                                       s.needs(1), s.needs(2));
            if (s.needs(0)) s.add(0, std::move(r.dx));
            if (s.needs(1)) s.add(1, std::move(r.dw));
            if (s.needs(2)) s.add(2, std::move(r.db));
        });
}

template <class T>
Var<T> conv1d(const Var<T>& x, const Var<T>& w, const Var<T>& bias = Var<T>(), std::int64_t stride = 1,
              std::int64_t padding = 0, std::int64_t dilation = 1, std::int64_t groups = 1) {
    const Tensor<T> bv = bias.defined() ? bias.value() : Tensor<T>();
    Tensor<T> y = ops::conv1d(x.value(), w.value(), bv, stride, padding, dilation, groups);
    return autograd::make_result(
        "conv1d", std::move(y), {&x, &w, &bias},
        [xv = x.value(), wv = w.value(), stride, padding, dilation, groups](const Tensor<T>& g,
                                                                          autograd::GradSink<T, Cpu>& s) {
            ops::ConvGrads<T> r = ops::conv1d_backward(g, xv, wv, stride, padding, dilation, groups, s.needs(0),
                                                       s.needs(1), s.needs(2));
            if (s.needs(0)) s.add(0, std::move(r.dx));
            if (s.needs(1)) s.add(1, std::move(r.dw));
            if (s.needs(2)) s.add(2, std::move(r.db));
        });
}

template <class T>
Var<T> depthwise_conv1d(const Var<T>& x, const Var<T>& w, const Var<T>& bias = Var<T>(), std::int64_t dilation = 1,
                        PaddingMode padding = PaddingMode::Same) {
    const Tensor<T> bv = bias.defined() ? bias.value() : Tensor<T>();
    Tensor<T> y = ops::depthwise_conv1d(x.value(), w.value(), bv, dilation, padding);
    return autograd::make_result(
        "depthwise_conv1d", std::move(y), {&x, &w, &bias},
        [xv = x.value(), wv = w.value(), dilation, padding](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
            ops::ConvGrads<T> r = ops::depthwise_conv1d_backward(g, xv, wv, dilation, padding, s.needs(0), s.needs(1),
                                                                 s.needs(2));
            if (s.needs(0)) s.add(0, std::move(r.dx));
            if (s.needs(1)) s.add(1, std::move(r.dw));
            if (s.needs(2)) s.add(2, std::move(r.db));
        });
}

}  // namespace polymath
