// CPU references for test_moe.cu and test_optim_cuda.cu, compiled by the host
// compiler in moe_ref.cpp (the CPU top-k and the CPU optimizers pull in
// headers that .cu files do not include).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <polymath/tensor/tensor.hpp>

namespace polymath::test {

// ops::topk on the CPU.
template <class T>
struct RefTopK {
    Tensor<T, Cpu> values;
    Tensor<std::int64_t, Cpu> indices;
};
template <class T>
RefTopK<T> ref_topk(const Tensor<T, Cpu>& x, std::int64_t k, std::int64_t axis, bool largest, bool sorted);

// optim::Adam / AdamW / SGD on the CPU, run for grads.size() steps.
enum class RefOptKind { adam, adamw, sgd };
struct RefOptConfig {
    RefOptKind kind = RefOptKind::adam;
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
    bool amsgrad = false;
    double momentum = 0, dampening = 0;
    bool nesterov = false;
};
template <class T>
struct RefOptRun {
    std::vector<std::vector<Tensor<T, Cpu>>> params;  // [step][param]: the parameters after each step
    // Final slots by name ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"): [slot][param].
    std::vector<std::string> slot_names;
    std::vector<std::vector<Tensor<T, Cpu>>> slots;
};
// grads[step][param].
template <class T>
RefOptRun<T> ref_optim_run(const RefOptConfig& c, const std::vector<Tensor<T, Cpu>>& init,
                           const std::vector<std::vector<Tensor<T, Cpu>>>& grads);

}  // namespace polymath::test
