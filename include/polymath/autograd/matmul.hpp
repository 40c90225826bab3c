// polymath/autograd/matmul.hpp — differentiable matmul (torch.matmul semantics).
//
//   Var<float> c = matmul(a, b);   // 1-D, 2-D and batched with broadcast batch dims
//
// Backward: dA = dC · Bᵀ, dB = Aᵀ · dC through the same GEMM (transposes are
// zero-copy views), summed over broadcast batch dims (ops::matmul_backward).
#pragma once
#include "polymath/autograd/var.hpp"
#include "polymath/ops/matmul.hpp"

namespace polymath {

template <class T>
Var<T> matmul(const Var<T>& a, const Var<T>& b) {
    return autograd::make_result("matmul", ops::matmul(a.value(), b.value()), {&a, &b},
                                 [av = a.value(), bv = b.value()](const Tensor<T>& g, autograd::GradSink<T, Cpu>& s) {
                                     ops::MatmulGrads<T> r = ops::matmul_backward(g, av, bv, s.needs(0), s.needs(1));
                                     if (s.needs(0)) s.add(0, std::move(r.da));
                                     if (s.needs(1)) s.add(1, std::move(r.db));
                                 });
}

}  // namespace polymath
