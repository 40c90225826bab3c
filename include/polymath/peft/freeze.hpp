// polymath/peft/freeze.hpp — train only what PEFT added; count it.
//
//   peft::add_lora(model, "**.attention", {.rank = 4});
//   peft::freeze_base(model);                          // everything else: requires_grad = false
//   optim::AdamW<float> opt(model.named_parameters(/*trainable_only=*/true), {.lr = 1e-3});
//   peft::ParameterReport r = peft::parameter_report(model);   // r.trainable, r.frozen, r.extra_bytes
//
// Where the added parameters live: INSIDE the model, so named_parameters(),
// state_dict() and checkpoints see them — LoRA factors are parameters of the
// layer they modify ("fc.lora_A"), adapters/prompts are extensions of the
// layer they hook ("fc.adapter.down.weight"). added_parameters() finds them
// by identity, not by name: the lora_* members of every nn::Linear /
// nn::MultiheadAttention and the parameters of every extension.
//
// Frozen parameters (requires_grad = false) never get a grad buffer (the tape
// records no gradient for them) and optimizers skip them, so they get no
// optimizer state either; tests/peft checks both.
#pragma once
#include <cstdint>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "polymath/peft/lora.hpp"

namespace polymath::peft {

// The parameters PEFT added to the model, in named_parameters() order.
template <class Model>
auto added_parameters(Model& model) {
    using T = typename Model::value_type;
    using D = typename Model::device_type;
    std::set<const void*> added;
    auto note = [&](const std::string&, Var<T, D>& v) { added.insert(v.impl().get()); };
    auto visit = [&](const std::string& prefix, auto& m) {
        using M = std::remove_reference_t<decltype(m)>;
        m.for_each_extension_parameter(prefix, note);
        if constexpr (detail::is_linear<M>::value) {
            if (m.lora_A.defined()) added.insert(m.lora_A.impl().get());
            if (m.lora_B.defined()) added.insert(m.lora_B.impl().get());
        } else if constexpr (detail::is_attention<M>::value) {
            for (int s = 0; s < 3; ++s) {
                if (m.lora_A[s].defined()) added.insert(m.lora_A[s].impl().get());
                if (m.lora_B[s].defined()) added.insert(m.lora_B[s].impl().get());
            }
        }
    };
    visit("", model);
    model.for_each_module([&](const std::string& n, auto& m) { visit(n + ".", m); });
    std::vector<nn::NamedParameter<T, D>> out;
    for (auto& p : model.named_parameters())
        if (added.count(p.var.impl().get())) out.push_back(p);
    return out;
}

struct ParameterReport {
    std::int64_t total = 0;        // every parameter element of the model (base + added)
    std::int64_t trainable = 0;    // elements with requires_grad
    std::int64_t frozen = 0;       // elements without
    std::int64_t added = 0;        // elements PEFT added (what a task owns beyond the shared backbone)
    std::int64_t extra_bytes = 0;  // added · sizeof(T): extra storage per task
    double trainable_fraction() const { return total > 0 ? double(trainable) / double(total) : 0.0; }
};

inline std::ostream& operator<<(std::ostream& os, const ParameterReport& r) {
    return os << "parameters: total " << r.total << ", trainable " << r.trainable << " ("
              << 100.0 * r.trainable_fraction() << "%), frozen " << r.frozen << ", added " << r.added
              << " (" << r.extra_bytes << " bytes per task)";
}

template <class Model>
ParameterReport parameter_report(Model& model) {
    using T = typename Model::value_type;
    ParameterReport r;
    for (const auto& p : model.named_parameters()) {
        r.total += p.var.numel();
        (p.var.requires_grad() ? r.trainable : r.frozen) += p.var.numel();
    }
    for (const auto& p : added_parameters(model)) r.added += p.var.numel();
    r.extra_bytes = r.added * std::int64_t(sizeof(T));
    return r;
}

// requires_grad = false on every parameter except the added ones (which get
// requires_grad = true); drops the frozen parameters' old gradients.
template <class Model>
ParameterReport freeze_base(Model& model) {
    using T = typename Model::value_type;
    using D = typename Model::device_type;
    std::set<const void*> added;
    for (const auto& p : added_parameters(model)) added.insert(p.var.impl().get());
    model.for_each_parameter([&](const std::string&, Var<T, D>& v) {
        const bool train = added.count(v.impl().get()) > 0;
        v.set_requires_grad(train);
        if (!train) v.zero_grad();
    });
    return parameter_report(model);
}

}  // namespace polymath::peft
