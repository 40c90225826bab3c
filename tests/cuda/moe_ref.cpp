// CPU references for the MoE / top-k / fused optimizer CUDA tests (see moe_ref.hpp).
#include "moe_ref.hpp"

#include <memory>

#include <polymath/polymath.hpp>

namespace polymath::test {

template <class T>
RefTopK<T> ref_topk(const Tensor<T, Cpu>& x, std::int64_t k, std::int64_t axis, bool largest, bool sorted) {
    auto r = ops::topk(x, k, axis, largest, sorted);
    return {r.values, r.indices};
}
template RefTopK<float> ref_topk(const Tensor<float, Cpu>&, std::int64_t, std::int64_t, bool, bool);
template RefTopK<double> ref_topk(const Tensor<double, Cpu>&, std::int64_t, std::int64_t, bool, bool);
template RefTopK<std::int32_t> ref_topk(const Tensor<std::int32_t, Cpu>&, std::int64_t, std::int64_t, bool, bool);
template RefTopK<std::int64_t> ref_topk(const Tensor<std::int64_t, Cpu>&, std::int64_t, std::int64_t, bool, bool);

template <class T>
RefOptRun<T> ref_optim_run(const RefOptConfig& c, const std::vector<Tensor<T, Cpu>>& init,
                           const std::vector<std::vector<Tensor<T, Cpu>>>& grads) {
    std::vector<nn::NamedParameter<T>> named;
    for (std::size_t i = 0; i < init.size(); ++i)
        named.push_back({"p" + std::to_string(i), Var<T>(init[i].clone(), true)});
    std::unique_ptr<optim::Optimizer<T>> opt;
    RefOptRun<T> out;
    switch (c.kind) {
        case RefOptKind::adam:
            opt = std::make_unique<optim::Adam<T>>(
                named, optim::AdamOptions{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.amsgrad});
            out.slot_names = {"exp_avg", "exp_avg_sq"};
            if (c.amsgrad) out.slot_names.push_back("max_exp_avg_sq");
            break;
        case RefOptKind::adamw:
            opt = std::make_unique<optim::AdamW<T>>(
                named, optim::AdamWOptions{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.amsgrad});
            out.slot_names = {"exp_avg", "exp_avg_sq"};
            if (c.amsgrad) out.slot_names.push_back("max_exp_avg_sq");
            break;
        case RefOptKind::sgd:
            opt = std::make_unique<optim::SGD<T>>(
                named, optim::SGDOptions{c.lr, c.momentum, c.dampening, c.weight_decay, c.nesterov});
            if (c.momentum != 0) out.slot_names = {"momentum_buffer"};
            break;
    }
    for (const auto& step_grads : grads) {
        for (std::size_t i = 0; i < named.size(); ++i) {
            named[i].var.zero_grad();
            named[i].var.backward(step_grads[i].clone());
        }
        opt->step();
        std::vector<Tensor<T, Cpu>> snap;
        for (auto& p : named) snap.push_back(p.var.value().clone());
        out.params.push_back(std::move(snap));
    }
    const optim::OptimizerState<T> st = opt->state();
    for (const std::string& s : out.slot_names) {
        std::vector<Tensor<T, Cpu>> per;
        for (std::size_t i = 0; i < named.size(); ++i) {
            const std::string key = "p" + std::to_string(i) + "." + s;
            Tensor<T, Cpu> found;
            for (const auto& [name, t] : st.tensors)
                if (name == key) found = t;
            per.push_back(found);
        }
        out.slots.push_back(std::move(per));
    }
    return out;
}
template RefOptRun<float> ref_optim_run(const RefOptConfig&, const std::vector<Tensor<float, Cpu>>&,
                                        const std::vector<std::vector<Tensor<float, Cpu>>>&);
template RefOptRun<double> ref_optim_run(const RefOptConfig&, const std::vector<Tensor<double, Cpu>>&,
                                         const std::vector<std::vector<Tensor<double, Cpu>>>&);

}  // namespace polymath::test
