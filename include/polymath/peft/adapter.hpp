// polymath/peft/adapter.hpp — bottleneck adapters (Houlsby et al. 2019).
//
//   peft::Adapter<float> a(256, 16);                     // 256 -> 16 -> 256
//   Var<float> y = a(x);                                 // x + scale · up(act(down(x)))
//   peft::add_adapters(model, "encoder.*.attention", {.bottleneck = 16});
//   peft::add_adapters(model, "encoder.*.ffn.1", {.bottleneck = 16}, gen);  // after the FFN
//
// down: Linear(d, b) with torch's default init; up: Linear(b, d) with weight
// and bias ZERO, so an adapter starts as the identity and a model with fresh
// adapters computes exactly what it computed before (then training moves only
// the adapters). The residual is inside the adapter, as in the paper.
//
// add_adapters attaches one as an output hook (extension "adapter", or
// AdapterOptions::name) to every matched module that runs output hooks
// (nn::Linear, nn::MultiheadAttention, or any layer with
// `static constexpr bool runs_output_hooks = true` whose operator() ends in
// `return this->run_output_hooks(forward(x))`). The feature size d is the
// Linear's out_features / the attention's embed_dim, or m.output_features()
// when the layer has one, or AdapterOptions::features when set.
#pragma once
#include <cmath>
#include <memory>
#include <string>

#include "polymath/autograd/unary.hpp"
#include "polymath/nn/attention.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/peft/extension.hpp"
#include "polymath/peft/lora.hpp"
#include "polymath/peft/match.hpp"

namespace polymath::peft {

enum class Activation { ReLU, GELU, Tanh, Identity };

template <class T>
Var<T> activate(const Var<T>& x, Activation a) {
    switch (a) {
        case Activation::ReLU: return relu(x);
        case Activation::GELU: return gelu(x);
        case Activation::Tanh: return tanh(x);
        case Activation::Identity: return x;
    }
    return x;
}

struct AdapterOptions {
    std::int64_t bottleneck = 16;
    Activation activation = Activation::ReLU;
    double scale = 1.0;             // y = x + scale · up(act(down(x)))
    std::int64_t features = 0;      // 0: infer from the layer (see the file comment)
    std::string name = "adapter";   // the extension name (parameters "<layer>.<name>.down.weight", ...)
};

template <class T>
class Adapter : public nn::Module<Adapter<T>, T> {
public:
    Adapter() = default;
    Adapter(std::int64_t features, std::int64_t bottleneck, Activation act = Activation::ReLU, double scale = 1.0,
            Generator& gen = default_generator())
        : act_(act), scale_(scale) {
        POLYMATH_CHECK(features > 0 && bottleneck > 0, "peft::Adapter", "features=", features,
                       " and bottleneck=", bottleneck, " must be positive");
        down = nn::Linear<T>(features, bottleneck, {}, gen);
        up = nn::Linear<T>(bottleneck, features, {}, gen);
        Tensor<T>(up.weight.value()).fill_(T(0));
        Tensor<T>(up.bias.value()).fill_(T(0));
    }
    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(x.dim() >= 1 && x.size(-1) == down.in_features(), "peft::Adapter", "input shape ",
                       x.shape(), " does not end in features=", down.in_features());
        Var<T> h = up(activate(down(x), act_));
        return add(x, scale_ == 1.0 ? h : h * T(scale_));
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    std::int64_t features() const noexcept { return down.in_features(); }
    std::int64_t bottleneck() const noexcept { return down.out_features(); }

    template <class V>
    void visit(V& v) {
        v.module("down", down);
        v.module("up", up);
    }

    nn::Linear<T> down, up;

private:
    Activation act_ = Activation::ReLU;
    double scale_ = 1.0;
};

namespace detail {
// The output feature size of a hook-running layer, or 0 when unknown.
template <class M>
std::int64_t output_features(const M& m) {
    if constexpr (is_linear<M>::value)
        return m.out_features();
    else if constexpr (is_attention<M>::value)
        return m.embed_dim();
    else if constexpr (requires { m.output_features(); })
        return m.output_features();
    else
        return 0;
}
}  // namespace detail

// Attaches an Adapter to every matched hook-running module; returns their names.
template <class Model>
std::vector<std::string> add_adapters(Model& model, const std::string& pattern, const AdapterOptions& opt = {},
                                      Generator& gen = default_generator()) {
    using T = typename Model::value_type;
    std::vector<std::function<void()>> actions;
    auto names = for_each_target(model, pattern, "peft::add_adapters", "module that runs output hooks",
                                 [&](const std::string& n, auto& m) {
                                     using M = std::remove_reference_t<decltype(m)>;
                                     if constexpr (runs_output_hooks<M>()) {
                                         const std::int64_t d = opt.features > 0 ? opt.features : detail::output_features(m);
                                         POLYMATH_CHECK(d > 0, "peft::add_adapters", "cannot tell the feature size of '", n,
                                                        "'; set AdapterOptions::features");
                                         POLYMATH_CHECK(opt.bottleneck > 0, "peft::add_adapters", "bottleneck ",
                                                        opt.bottleneck, " must be positive");
                                         for (const auto& e : m.extensions())
                                             POLYMATH_CHECK(e.name != opt.name, "peft::add_adapters", "module '", n,
                                                            "' already has an extension named '", opt.name, "'");
                                         actions.push_back([&m, d, &opt, &gen] {
                                             m.add_extension(opt.name, std::make_shared<ModuleExtension<Adapter<T>>>(
                                                                           Adapter<T>(d, opt.bottleneck, opt.activation,
                                                                                      opt.scale, gen)));
                                         });
                                         return true;
                                     } else {
                                         return false;
                                     }
                                 });
    for (auto& a : actions) a();
    return names;
}

}  // namespace polymath::peft
