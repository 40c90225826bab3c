// Fit a linear map with autograd and plain gradient descent.
#include <iostream>

#include <polymath/polymath.hpp>

int main() {
    using namespace polymath;
    Generator gen(0);
    Tensor<float> x = rand<float>({256, 3}, gen);                              // inputs in [0, 1)
    Tensor<float> y = ops::matmul(x, Tensor<float>{{2, -1, 0.5f}}.t()) + 0.3f;  // targets
    Var<float> w(zeros<float>({3, 1}), /*requires_grad=*/true);
    Var<float> b(zeros<float>({1}), true);
    for (int step = 0; step <= 600; ++step) {
        Var<float> err = matmul(Var<float>(x), w) + b - Var<float>(y);
        Var<float> loss = mean(err * err);
        w.zero_grad();
        b.zero_grad();
        loss.backward();
        ops::add_(w.value(), w.grad(), -0.5f);  // w -= 0.5 * dloss/dw
        ops::add_(b.value(), b.grad(), -0.5f);
        if (step % 200 == 0) std::cout << "step " << step << "  loss " << loss.item() << '\n';
    }
    std::cout << "w = " << w.value().t() << "\nb = " << b.value() << '\n';
}
