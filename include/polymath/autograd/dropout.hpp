// polymath/autograd/dropout.hpp — differentiable (inverted) dropout.
//
//   Var<float> h = dropout(x, 0.1, /*training=*/true);          // default generator
//   Var<float> h = dropout(x, 0.1, training, gen);              // own Generator
//
// Not training, or p == 0: returns x itself (no node, no draw). Otherwise the
// forward keeps the uint8 mask of its draw and the backward is
// g * mask / (1 - p) with that same mask (ops::dropout_backward).
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/dropout.hpp"

namespace polymath {

template <class T>
Var<T> dropout(const Var<T>& x, double p, bool training, Generator& gen = default_generator()) {
    x.value().check_defined("dropout");
    ops::detail::check_dropout_p(p, "dropout");
    if (!training || p == 0.0) return x;
    ops::DropoutForward<T> f = ops::dropout_forward(x.value(), p, gen);
    return autograd::make_result("dropout", f.y, {&x},
                                 [mask = f.mask, p](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::dropout_backward(g, mask, p));
                                 });
}

}  // namespace polymath
