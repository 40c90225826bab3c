// polymath/autograd/layer_norm.hpp — differentiable layer normalisation.
//
//   Var<float> y = layer_norm(x, {512}, weight, bias);   // weight, bias: Vars of shape {512}
//   Var<float> z = layer_norm(x, {4, 8});                // no affine parameters
//   layer_norm(x, {512}, Var<float>(), bias);            // an undefined Var() omits one
//
// The forward saves x, the per-row mean and rstd; the backward kernel
// (ops::layer_norm_backward) returns dx, dweight and dbias in one sweep.
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/layer_norm.hpp"

namespace polymath {

template <class T>
Var<T> layer_norm(const Var<T>& x, const Shape& normalized_shape, const Var<T>& weight = Var<T>(),
                  const Var<T>& bias = Var<T>(), double eps = 1e-5) {
    const Tensor<T> wv = weight.defined() ? weight.value() : Tensor<T>();
    const Tensor<T> bv = bias.defined() ? bias.value() : Tensor<T>();
    ops::LayerNormForward<T> f = ops::layer_norm_forward(x.value(), normalized_shape, wv, bv, eps);
    return autograd::make_result(
        "layer_norm", f.y, {&x, &weight, &bias},
        [xv = x.value(), normalized_shape, wv, mean = f.mean, rstd = f.rstd](const Tensor<T>& g,
                                                                            autograd::GradSink<T, Cpu>& s) {
            ops::LayerNormGrads<T> r = ops::layer_norm_backward(g, xv, mean, rstd, normalized_shape, wv, s.needs(0),
                                                                s.needs(1), s.needs(2));
            if (s.needs(0)) s.add(0, std::move(r.dx));
            if (s.needs(1)) s.add(1, std::move(r.dweight));
            if (s.needs(2)) s.add(2, std::move(r.dbias));
        });
}

}  // namespace polymath
