// polymath/peft/extension.hpp — any module with forward(y) as an output hook.
//
//   auto ext = std::make_shared<peft::ModuleExtension<Adapter<float>>>(Adapter<float>(64, 8));
//   layer.add_extension("adapter", ext);   // layer(x) now returns adapter.forward(layer.forward(x))
//
// The wrapped module's parameters become the layer's ("<layer>.adapter.down.weight"),
// train()/eval() reach it, clone() deep-copies it (nn/module.hpp).
#pragma once
#include <memory>
#include <utility>

#include "polymath/nn/module.hpp"

namespace polymath::peft {

template <class M>
class ModuleExtension : public nn::Extension<typename M::value_type, typename M::device_type> {
public:
    using T = typename M::value_type;
    using D = typename M::device_type;
    using Base = nn::Extension<T, D>;

    explicit ModuleExtension(M m) : module(std::move(m)) {}
    Var<T, D> apply(const Var<T, D>& y) override { return module.forward(y); }
    void for_each_parameter(const typename Base::ParamFn& f) override {
        module.for_each_parameter([&](const std::string& n, Var<T, D>& v) { f(n, v); });
    }
    void train(bool on) override { module.train(on); }
    std::shared_ptr<Base> clone() const override { return std::make_shared<ModuleExtension>(module.clone()); }

    M module;
};

// The module of type M attached to `layer` under `name`, or nullptr.
template <class M, class Layer>
M* find_extension(Layer& layer, const std::string& name) {
    for (const auto& e : layer.extensions())
        if (e.name == name)
            if (auto* me = dynamic_cast<ModuleExtension<M>*>(e.ext.get())) return &me->module;
    return nullptr;
}

}  // namespace polymath::peft
