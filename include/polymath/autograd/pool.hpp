// polymath/autograd/pool.hpp — differentiable pooling.
//
//   Var<float> y = max_pool2d(x, 2);                    // x [N,C,H,W], 2x2 windows, stride 2
//   Var<float> a = avg_pool2d(x, {3, 3}, 1, 1);         // count_include_pad = true
//   Var<float> m = max_pool1d(h, 3, 2, 1);              // h [N,C,L]
//   Var<float> p = avg_pool1d(h, 2);
//   Var<float> q = global_avg_pool(x);                  // [N,C,...] -> [N,C]
//   Var<float> r = max_pool1d_channels_last(hcl, 3, 2, PaddingMode::Same);   // hcl [N,L,C]
//
// Semantics as the kernels in ops/pool.hpp. The max pools return the values
// only; the argmax indices are kept in the backward closure (the gradient goes
// to the winning input element of each window).
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/pool.hpp"

namespace polymath {

template <class T>
Var<T> max_pool2d(const Var<T>& x, Int2 kernel, Int2 stride = Int2(), Int2 padding = 0) {
    ops::MaxPoolResult<T> r = ops::max_pool2d(x.value(), kernel, stride, padding);
    return autograd::make_result("max_pool2d", std::move(r.values), {&x},
                                 [shape = x.shape(), idx = r.indices](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::max_pool2d_backward(g, idx, shape));
                                 });
}

template <class T>
Var<T> max_pool1d(const Var<T>& x, std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0) {
    ops::MaxPoolResult<T> r = ops::max_pool1d(x.value(), kernel, stride, padding);
    return autograd::make_result("max_pool1d", std::move(r.values), {&x},
                                 [shape = x.shape(), idx = r.indices](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::max_pool1d_backward(g, idx, shape));
                                 });
}

template <class T>
Var<T> avg_pool2d(const Var<T>& x, Int2 kernel, Int2 stride = Int2(), Int2 padding = 0) {
    return autograd::make_result("avg_pool2d", ops::avg_pool2d(x.value(), kernel, stride, padding), {&x},
                                 [shape = x.shape(), kernel, stride, padding](const Tensor<T>& g,
                                                                             autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::avg_pool2d_backward(g, shape, kernel, stride, padding));
                                 });
}

template <class T>
Var<T> avg_pool1d(const Var<T>& x, std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0) {
    return autograd::make_result("avg_pool1d", ops::avg_pool1d(x.value(), kernel, stride, padding), {&x},
                                 [shape = x.shape(), kernel, stride, padding](const Tensor<T>& g,
                                                                             autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::avg_pool1d_backward(g, shape, kernel, stride, padding));
                                 });
}

template <class T>
Var<T> global_avg_pool(const Var<T>& x) {
    return autograd::make_result("global_avg_pool", ops::global_avg_pool(x.value()), {&x},
                                 [shape = x.shape()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::global_avg_pool_backward(g, shape));
                                 });
}

template <class T>
Var<T> max_pool1d_channels_last(const Var<T>& x, std::int64_t kernel, std::int64_t stride = 0,
                                PaddingMode padding = PaddingMode::Same) {
    ops::MaxPoolResult<T> r = ops::max_pool1d_channels_last(x.value(), kernel, stride, padding);
    return autograd::make_result("max_pool1d_channels_last", std::move(r.values), {&x},
                                 [shape = x.shape(), idx = r.indices](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     s.add(0, ops::max_pool1d_channels_last_backward(g, idx, shape));
                                 });
}

}  // namespace polymath
