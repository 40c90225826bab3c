// polymath/autograd/moe.hpp — differentiable pieces of a mixture-of-experts layer.
//
//   auto plan = std::make_shared<const ops::MoePlan>(ops::moe_plan(indices, E, capacity, padding_mask));
//   Var<float> xs = moe_dispatch(x, plan);                      // [A, d], rows sorted by expert
//   Var<float> h  = grouped_linear(xs, w1, b1, plan->expert_offsets);   // per-expert x·W_e + b_e
//   Var<float> y  = moe_combine(ys, gates, plan);               // [S, d], gate-weighted
//   Var<float> p  = normal_cdf(z);                              // Φ(z), for the load estimator
//
// Backward passes: dispatch/combine as in ops/moe.hpp; grouped_linear
// dx = grouped_gemm(g, W, transposed), dW = grouped_gemm_tn(x, g),
// db = grouped_row_sum(g); normal_cdf dz = g · φ(z).
#pragma once
#include <cmath>
#include <memory>
#include <numbers>

#include "polymath/autograd/var.hpp"
#include "polymath/ops/grouped_gemm.hpp"
#include "polymath/ops/moe.hpp"

namespace polymath {

// x [M, K] (rows grouped by expert_offsets), w [E, K, N], b [E, N] or undefined.
template <class T>
Var<T> grouped_linear(const Var<T>& x, const Var<T>& w, const Var<T>& b, const Tensor<std::int64_t>& expert_offsets) {
    Tensor<T> y = ops::grouped_gemm(x.value(), w.value(), expert_offsets);
    if (b.defined()) ops::grouped_bias_add_(y, b.value(), expert_offsets);
    return autograd::make_result(
        "grouped_linear", y, {&x, &w, &b},
        [xv = x.value(), wv = w.value(), expert_offsets](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
            if (s.needs(0)) s.add(0, ops::grouped_gemm(g, wv, expert_offsets, /*trans_b=*/true));
            if (s.needs(1)) s.add(1, ops::grouped_gemm_tn(xv, g, expert_offsets));
            if (s.needs(2)) s.add(2, ops::grouped_row_sum(g, expert_offsets));
        });
}

template <class T>
Var<T> moe_dispatch(const Var<T>& x, std::shared_ptr<const ops::MoePlan> plan) {
    return autograd::make_result("moe_dispatch", ops::moe_dispatch(x.value(), *plan), {&x},
                                 [plan](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::moe_dispatch_backward(g, *plan));
                                 });
}

template <class T>
Var<T> moe_combine(const Var<T>& ys, const Var<T>& gates, std::shared_ptr<const ops::MoePlan> plan) {
    return autograd::make_result(
        "moe_combine", ops::moe_combine(ys.value(), gates.value(), *plan), {&ys, &gates},
        [plan, yv = ys.value(), gv = gates.value()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
            ops::MoeCombineGrads<T> r = ops::moe_combine_backward(g, yv, gv, *plan, s.needs(0), s.needs(1));
            if (s.needs(0)) s.add(0, std::move(r.dys));
            if (s.needs(1)) s.add(1, std::move(r.dgates));
        });
}

// Φ(z) = (1 + erf(z / √2)) / 2, the standard normal CDF.
template <class T>
Var<T> normal_cdf(const Var<T>& z) {
    Tensor<T> zc = z.value().contiguous();
    Tensor<T> y = Tensor<T>::empty(zc.shape());
    for (std::int64_t i = 0; i < zc.numel(); ++i)
        y.data()[i] = T(0.5 * std::erfc(-double(zc.data()[i]) * std::numbers::sqrt2 / 2));
    return autograd::make_result("normal_cdf", y, {&z}, [zc](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
        const Tensor<T> gc = g.contiguous();
        Tensor<T> dz = Tensor<T>::empty(zc.shape());
        const double c = 1.0 / std::sqrt(2.0 * std::numbers::pi);
        for (std::int64_t i = 0; i < zc.numel(); ++i) {
            const double v = double(zc.data()[i]);
            dz.data()[i] = T(double(gc.data()[i]) * c * std::exp(-0.5 * v * v));
        }
        s.add(0, std::move(dz));
    });
}

}  // namespace polymath
