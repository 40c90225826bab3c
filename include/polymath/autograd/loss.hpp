// polymath/autograd/loss.hpp — differentiable cross_entropy, nll_loss, mse_loss.
//
//   Var<float> loss = cross_entropy(logits, targets);              // mean over non-ignored
//   cross_entropy(logits, targets, {.ignore_index = 0, .label_smoothing = 0.1f});
//   nll_loss(log_softmax(logits, 1), targets);
//   mse_loss(pred, target);                                        // both Vars, broadcast
//
// Semantics, shapes and errors: see ops/loss.hpp. Targets are plain int64
// tensors (no gradient). cross_entropy saves only the per-row log-sum-exp and
// forms d logits = (softmax - smoothed one-hot) * g / count in one pass.
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/loss.hpp"

namespace polymath {

template <class T>
Var<T> cross_entropy(const Var<T>& logits, const Tensor<std::int64_t>& targets, const CrossEntropyOptions& opt = {}) {
    ops::CrossEntropyForward<T> f = ops::cross_entropy_forward(logits.value(), targets, opt);
    return autograd::make_result(
        "cross_entropy", f.loss, {&logits},
        [x = logits.value(), targets, lse = f.lse, count = f.count, opt](const Tensor<T>& g,
                                                                         autograd::GradSink<T, Cpu>& s) {
            s.add(0, ops::cross_entropy_backward(g, x, targets, lse, count, opt));
        });
}

template <class T>
Var<T> nll_loss(const Var<T>& log_probs, const Tensor<std::int64_t>& targets, const NllLossOptions& opt = {}) {
    return autograd::make_result("nll_loss", ops::nll_loss(log_probs.value(), targets, opt), {&log_probs},
                                 [x = log_probs.value(), targets, opt](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::nll_loss_backward(g, x, targets, opt));
                                 });
}

template <class T>
Var<T> mse_loss(const Var<T>& a, const Var<T>& b, Reduction reduction = Reduction::Mean) {
    return autograd::make_result("mse_loss", ops::mse_loss(a.value(), b.value(), reduction), {&a, &b},
                                 [av = a.value(), bv = b.value(), reduction](const Tensor<T>& g,
                                                                             autograd::GradSink<T, Cpu>& s) {
                                     ops::MseGrads<T> r = ops::mse_loss_backward(g, av, bv, reduction, s.needs(0), s.needs(1));
                                     if (s.needs(0)) s.add(0, std::move(r.da));
                                     if (s.needs(1)) s.add(1, std::move(r.db));
                                 });
}

}  // namespace polymath
