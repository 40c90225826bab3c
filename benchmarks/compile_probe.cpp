// compile_probe — the translation unit whose compile time we report: it
// includes polymath.hpp and uses 20 ops (forward and backward), as a small
// model file would. Timed by benchmarks/compile_time.sh; also built by the
// benchmark target so it keeps compiling.
#include <polymath/polymath.hpp>

#include <cstdio>

using namespace polymath;

int main() {
    Generator g(0);
    Var<float> x(randn<float>({8, 16}, g), true), w(randn<float>({16, 16}, g), true), b(zeros<float>({16}), true);
    Var<float> gamma(ones<float>({16}), true), beta(zeros<float>({16}), true);
    Var<float> h = matmul(x, w) + b;                                  // 1 matmul, 2 add
    h = layer_norm(h, {16}, gamma, beta);                             // 3 layer_norm
    h = gelu(h) * sigmoid(h) - tanh(h);                               // 4 gelu, 5 sigmoid, 6 mul, 7 tanh, 8 sub
    h = relu(h) + exp(h * 0.1f) / (sqrt(abs(h) + 1.0f));              // 9 relu, 10 exp, 11 div, 12 sqrt, 13 abs
    h = dropout(h, 0.1f, true, g);                                    // 14 dropout
    Var<float> s = softmax(h, -1) + log_softmax(h, 0);                // 15 softmax, 16 log_softmax
    Var<float> m = mean(s, {1}) + amax(s, {1});                       // 17 mean, 18 amax
    auto parts = chunk(s, 2, 1);                                      // 19 chunk
    Tensor<std::int64_t> y = Tensor<std::int64_t>::zeros({8});
    Var<float> loss = cross_entropy(concat(parts, 1), y) + sum(m);    // 20 cross_entropy (+ concat, sum)
    loss.backward();
    std::printf("loss %.4f grad %.4f\n", double(loss.item()), double(x.grad().data()[0]));
    return 0;
}
