// polymath/peft/feature_tap.hpp — record the outputs of named layers.
//
//   peft::FeatureTaps<float> taps = peft::tap_features(model, "blocks.**");
//   model(x);                                      // one forward pass
//   for (std::size_t i = 0; i < taps.size(); ++i)
//       use(taps.names()[i], taps.output(i));      // each tapped layer's latest output (a Var)
//   taps.remove(model);                            // detach again
//
// A tap is an output hook (extension "tap") that stores the layer's output
// and returns it unchanged, so a tapped model computes exactly what it did.
// Taps go on every matched module that runs output hooks (Linear,
// MultiheadAttention, ...; peft/match.hpp). The stored Vars keep their graph
// alive until the next pass or clear(); run the backbone under NoGradGuard
// when only the values are wanted (Head2Toe does). A clone() of a tapped
// model records into its own, fresh slots (not the original's taps).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "polymath/peft/match.hpp"

namespace polymath::peft {

template <class T, class D = Cpu>
class FeatureTaps {
public:
    using Slots = std::vector<Var<T, D>>;
    FeatureTaps() : slots_(std::make_shared<Slots>()) {}

    std::size_t size() const noexcept { return names_.size(); }
    const std::vector<std::string>& names() const noexcept { return names_; }
    // The latest output of tap i (undefined before the first pass or after clear()).
    const Var<T, D>& output(std::size_t i) const {
        POLYMATH_CHECK(i < names_.size(), "peft::FeatureTaps", "tap ", i, " out of range for ", names_.size(), " taps");
        return (*slots_)[i];
    }
    const Slots& outputs() const noexcept { return *slots_; }
    void clear() {
        for (auto& v : *slots_) v = Var<T, D>();
    }
    const std::string& extension_name() const noexcept { return ext_name_; }
    // Detaches the taps from the model.
    template <class Model>
    void remove(Model& model) {
        remove_extensions(model, ext_name_);
        clear();
    }

    // One tap (used by tap_features).
    class Tap : public nn::Extension<T, D> {
    public:
        Tap(std::shared_ptr<Slots> s, std::size_t i) : slots_(std::move(s)), i_(i) {}
        Var<T, D> apply(const Var<T, D>& y) override {
            (*slots_)[i_] = y;
            return y;
        }
        std::shared_ptr<nn::Extension<T, D>> clone() const override {
            return std::make_shared<Tap>(std::make_shared<Slots>(1), 0);
        }

    private:
        std::shared_ptr<Slots> slots_;
        std::size_t i_;
    };

    // Registers a tap for the layer called `name`; returns its extension.
    std::shared_ptr<Tap> make_tap(const std::string& name) {
        names_.push_back(name);
        slots_->emplace_back();
        return std::make_shared<Tap>(slots_, names_.size() - 1);
    }
    void set_extension_name(std::string n) { ext_name_ = std::move(n); }

private:
    std::shared_ptr<Slots> slots_;
    std::vector<std::string> names_;
    std::string ext_name_ = "tap";
};

// Taps every matched module that runs output hooks, in walk order.
template <class Model>
FeatureTaps<typename Model::value_type, typename Model::device_type> tap_features(
    Model& model, const std::string& pattern, const std::string& extension_name = "tap") {
    FeatureTaps<typename Model::value_type, typename Model::device_type> taps;
    taps.set_extension_name(extension_name);
    std::vector<std::function<void()>> actions;
    for_each_target(model, pattern, "peft::tap_features", "module that runs output hooks",
                    [&](const std::string& n, auto& m) {
                        using M = std::remove_reference_t<decltype(m)>;
                        if constexpr (runs_output_hooks<M>()) {
                            for (const auto& e : m.extensions())
                                POLYMATH_CHECK(e.name != extension_name, "peft::tap_features", "module '", n,
                                               "' already has an extension named '", extension_name, "'");
                            actions.push_back([&m, &taps, n, &extension_name] {
                                m.add_extension(extension_name, taps.make_tap(n));
                            });
                            return true;
                        } else {
                            return false;
                        }
                    });
    for (auto& a : actions) a();
    return taps;
}

}  // namespace polymath::peft
